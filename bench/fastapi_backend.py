"""FastAPI stand-in for Pipelit: the same framework and server as the real app.

A benchmark fixture, never part of a role. Pipelit is FastAPI on uvicorn; a
request to it costs at least what the framework costs, which is what this
measures (`GET /health`, as Pipelit answers without auth). Debian 12's
python3-fastapi, python3-uvicorn, python3-uvloop and python3-httptools run it:

    python3 -m uvicorn fastapi_backend:app --app-dir DIR --host 0.0.0.0 --port 8000 --no-access-log
"""

from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
async def health():
    return {"status": "ok"}
