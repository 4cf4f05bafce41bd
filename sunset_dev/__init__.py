"""Development harness, not part of the product: the local service stack, the stand-in
Messages server, the SMTP server and the example models that the demo and the tests use."""
