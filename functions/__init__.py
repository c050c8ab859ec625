"""One package per Lambda function; each exposes ``handler.lambda_handler``."""
