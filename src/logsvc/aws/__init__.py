"""The AWS serverless shape: Lambda handlers behind API Gateway or a function URL, and their packaging.

Nothing here may import Starlette, uvicorn, apsw, cryptography or PyJWT: the deployment zip holds only logsvc,
msgspec and uuid-utils (boto3 comes with the Lambda runtime). ``tests/aws/test_cold_start.py`` checks it.
"""
