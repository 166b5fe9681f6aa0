"""The domain: what an entry, a time, a query, a cursor, a retention rule and a role are, and the rules that
decide whether they are valid.

Its modules import nothing of ours but ``logsvc.errors`` and each other, so that the service, the stores, the
API and the Lambda handlers can all depend on them and they on none of those.
"""
