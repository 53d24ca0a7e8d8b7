"""Publications: publishing an item is background work (the worker example).

`POST /api/v1/items/{id}/publish` records the request, commits, and only then
enqueues `publish_item`; the task's effect happens once per request however
often the message is delivered.
"""
