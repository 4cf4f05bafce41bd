"""The names of a run's steps, as recorded in `step_attempts` and shown to operators."""

PREFLIGHT_STEP = "preflight"
NOTIFY_STEP = "notify_users"
RETIRED_NOTICE_STEP = "notify_retired"
REINSTATED_NOTICE_STEP = "notify_reinstated"
CANCELLED_NOTICE_STEP = "notify_cancelled"
DATE_CHANGE_STEP = "record_date_change"
DATE_CHANGED_NOTICE_STEP = "notify_date_changed"
REMINDERS_STEP = "send_reminders"
SITE_STEP = "publish_deprecations_page"
SNAPSHOT_STEP = "snapshot_weights"
VERIFY_STEP = "verify_preservation"
FINGERPRINT_STEP = "record_fingerprint"
INTERVIEW_STEP = "run_interviews"
REPORT_STEP = "assemble_report"
FINAL_REPORT_STEP = "seal_final_report"
FLIP_STEP = "flip_serving_status"
ROUTE_STEP = "route_gateway"
CHECK_STEP = "check_serving"
APPROVAL_STEP = "request_approval"
DECISION_STEP = "record_decision"
RESTORE_STEP = "restore_snapshot"
RESTORE_CHECK_STEP = "verify_restoration"
DRILL_STEP = "resurrection_drill"

# How every step retries a failure that may pass (``sunset.errors.is_transient``): this many
# more attempts, the first after this many seconds, each next wait doubled, then jittered
# by up to half either way. The Prefect steps (tasks/step.py) and the preflight's service
# probes (sunset/readiness.py), which run inside a step that is not retried, share them.
RETRIES = 3
FIRST_RETRY_WAIT_S = 1.0
RETRY_JITTER = 0.5
