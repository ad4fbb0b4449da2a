"""A terminal batch's failures grouped by code and message, biggest group first."""

from __future__ import annotations

import json
from contextlib import closing
from dataclasses import dataclass, field

from batches.api.errors import APIError, NotFoundError, describe
from batches.models import Batch
from batches.results.files import ResultsError, open_client
from batches.results.summaries import failure_of

MAX_EXAMPLES = 5
# Messages that embed numbers ("you requested 9317 tokens") can make every failure a group of its
# own; past this many groups, new messages are counted under their code only.
MAX_GROUPS = 50
OTHER_MESSAGES = "(other messages)"


@dataclass
class FailureGroup:
    code: str
    message: str
    count: int = 0
    examples: list[str] = field(default_factory=list)
    source: str = "requests"  # "validation" for the batch's own errors


@dataclass
class Triage:
    groups: list[FailureGroup]
    failures: int
    problem: str = ""
    merged: bool = False  # some messages were counted under their code only
    content_hidden: bool = False  # grouped by code alone, without messages or examples


class _Grouper:
    def __init__(self, with_content: bool = True) -> None:
        self.groups: dict[tuple[str, str, str], FailureGroup] = {}
        self.merged = False
        self.with_content = with_content

    def add(self, source: str, code: str, message: str, example: str) -> None:
        if not self.with_content:
            # Messages can quote the request, and examples are custom_ids: both are result content.
            message = example = ""
        key = (source, code, message)
        if key not in self.groups and len(self.groups) >= MAX_GROUPS:
            key = (source, code, OTHER_MESSAGES)
            self.merged = True
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = FailureGroup(code, key[2], source=source)
        group.count += 1
        if example and len(group.examples) < MAX_EXAMPLES:
            group.examples.append(example)


def triage(batch: Batch, *, with_content: bool = True) -> Triage:
    """Failures grouped by (code, message), biggest group first: the batch's own errors (a file that
    failed validation) and every failed line of its error file. Without `with_content`, for users who
    may not read results, they are grouped by code alone, with counts and no messages or examples."""
    grouper = _Grouper(with_content)
    for error in batch.errors or []:
        if not isinstance(error, dict):
            continue
        line = error.get("line")
        grouper.add(
            "validation",
            str(error.get("code") or "error"),
            str(error.get("message") or ""),
            f"line {line}" if line is not None else "",
        )
    problem = ""
    if batch.error_file_id:
        try:
            with (
                open_client(batch.connection) as client,
                closing(client.iter_file_lines(batch.error_file_id)) as lines,
            ):
                for raw in lines:
                    try:
                        item = json.loads(raw)
                    except ValueError:
                        continue
                    failure = failure_of(item) if isinstance(item, dict) else None
                    if failure is not None:
                        custom_id = item.get("custom_id")
                        grouper.add("requests", failure[0], failure[1], str(custom_id or ""))
        except NotFoundError:
            problem = "The error file is no longer available, so its failures cannot be grouped."
        except APIError as error:
            problem = describe(error)
        except ResultsError as error:
            problem = error.message
    groups = sorted(grouper.groups.values(), key=lambda g: (-g.count, g.code, g.message))
    return Triage(groups, sum(g.count for g in groups), problem, grouper.merged, not with_content)
