"""CDK app for mentor-connections (``cdk.json`` → ``python -m infra.app``)."""
