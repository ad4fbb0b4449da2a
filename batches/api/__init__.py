"""The OpenAI Batch and Files API, as the rest of the project sees it; the only code that speaks HTTP
to it. objects: the typed results and their tolerant parsing from JSON. errors: one exception
hierarchy modelled on the official SDKs, and describe() to put one into words. client:
BatchAPIClient (transport, retries, the endpoints, file streaming). Import from the module that owns
a name; names with a leading underscore are the package's own."""
