"""The local stack: AWS (moto), API Gateway, SQS pumps and the scheduler on loopback.

``python -m devstack up | token | demo`` (see :mod:`devstack.cli`); in Python,
:class:`devstack.stack.LocalStack`. Kept import-free so the CLI starts fast.
"""
