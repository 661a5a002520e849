"""Recipes: serving an aiomodelkit ``ModelLibrary`` from FastAPI and from aiohttp.

Run from the repository root. Publish the two example assets to a store (a local one, in a
temporary directory, here), then start the FastAPI recipe, which needs the ``fastapi`` extra
(FastAPI, uvicorn and prometheus-client). It serves on 127.0.0.1:8000 until Ctrl-C, and
``/ready`` answers 503 until the models are loaded; send the requests from a second terminal::

    pip install -e '.[fastapi]'
    export AIOMODELKIT_STORAGE="$(mktemp -d)" AIOMODELKIT_ASSETS_DIR="$(mktemp -d)"
    python -m examples.models                     # publishes the two example assets
    uvicorn examples.fastapi_app:app              # on 127.0.0.1:8000
    curl -X POST localhost:8000/predict -H 'content-type: application/json' \\
         -d '{"text": "a great and pleasant day"}'

Or, once that server is stopped, the aiohttp recipe, on the same port (it needs only
prometheus-client, for its ``/metrics``: the ``metrics`` extra, which ``fastapi`` includes)::

    python -m examples.aiohttp_app                # on 127.0.0.1:8000 too
    curl -X POST localhost:8000/predict -d '{"text": "an awful, bad day"}'
    curl localhost:8000/metrics | grep '^aiomodelkit_model_state{model="sentiment"'

``tests/test_readme.py`` runs these blocks as written, in order, with a real request to each
server; ``tests/web/`` tests both recipes in depth.
"""
