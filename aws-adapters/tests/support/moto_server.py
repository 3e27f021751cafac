"""moto's server, with DynamoDB's atomicity.

DynamoDB applies each write, and each TransactWriteItems, atomically: of racing
conditional writes one wins, and ADD updates never lose a count. moto's threaded
server checks and writes without a lock, so under concurrent requests two racers
can both pass a condition, and two ADDs can read the same old value. The port
contract races writes on purpose, so this runs moto's own WSGI app with one lock
around DynamoDB requests. Other services (SNS delivers over HTTP from inside a
request) stay concurrent, as in `moto_server`.

Usage: python moto_server.py HOST PORT (the tests run it with `python -c`)
"""

import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    create_backend_app,
)

dynamodb = threading.Lock()


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    moto = DomainDispatcherApplication(create_backend_app)

    def app(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with dynamodb:
                # The body is produced inside the lock: moto's responses are lists.
                return list(moto(environ, start_response))
        return moto(environ, start_response)

    run_simple(host, port, app, threaded=True)


if __name__ == "__main__":
    main()
