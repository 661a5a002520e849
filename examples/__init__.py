"""Recipes: serving an aiomodelkit ``ModelLibrary`` from FastAPI and from aiohttp.

Run from the repository root (the models' assets live in any store; a local one here)::

    mkdir -p /tmp/example-store
    export AIOMODELKIT_STORAGE=file:///tmp/example-store AIOMODELKIT_ASSETS_DIR=/tmp/example-cache
    python -m examples.models                     # publishes the two example assets
    uvicorn examples.fastapi_app:app              # or: python -m examples.aiohttp_app
    curl -X POST localhost:8000/predict -H 'content-type: application/json' \\
         -d '{"text": "a great and pleasant day"}'
"""
