"""mentor-connections domain code and adapters, shared by every Lambda function."""
