"""Client commands: ``generate``, ``edit``, ``chat`` and ``tasks`` talk to a running gateway over HTTP.

They use the gateway exactly as any client does (the official ``openai`` SDK, and plain HTTP for the
async tasks API of SPEC §10), so they work against any replica, local or remote::

    export IMAGEGATE_BASE_URL=http://127.0.0.1:8080 IMAGEGATE_API_KEY=sk-...
    imagegate generate "a lighthouse at dusk" -m gpt-image-2 -s 1536x1024 --partials 2 -o out/
"""
