"""A batch's results, and new work made from them or from an upload: summaries (parsing a JSONL
line), files (facts, preview, download), triage, submit (re-submit, create) and validation (upload
checks). Import from the module that owns a name."""
