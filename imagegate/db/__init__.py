"""imagegate.db: engine, tables, migrations and the stores built on them."""

# Tables declared beside their stores register on the shared metadata when imported; importing
# them here keeps `tables.metadata` complete for migrations checks and test fixtures.
from imagegate.db import channels as _channels  # noqa: F401
from imagegate.db import request_logs as _request_logs  # noqa: F401
from imagegate.db import tasks_tables as _tasks_tables  # noqa: F401
