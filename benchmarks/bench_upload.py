"""Does validating a 200 MB upload with a problem on every line stay within 64 MB of memory?

    DJANGO_DEBUG=1 uv run python benchmarks/bench_upload.py [--megabytes 200] [--json PATH]

Run on demand (`make bench` runs it); it is not part of the test suite. It writes two input files of
--megabytes into a temporary directory (removed afterwards), then measures, each in a fresh child
process of its own:

  problems file   about 110-byte lines, every one of them with a problem, cycling through the kinds
                  the validator knows (wrong method, wrong url, no model, a second model, broken JSON,
                  invalid UTF-8, a repeated custom_id, an empty line, not an object); the custom_ids
                  are otherwise all different, so the set of ids seen fills up to its bound
    read lines    baseline: the file read line by line (`for line in file`), nothing else
    validate      validate_upload (batches.results.validation) over the file read in 1 MiB chunks, as the
                  view does
    upload view   POST /batches/new/ through Django's whole stack (middleware, the multipart parser
                  and its upload handlers, the form, validation, the page), signed in as an operator;
                  the request body is streamed from a file, so the client side costs nothing

  blank file      nothing but newlines: the issue's example (a 1 MB file of them took 12 s)
    count lines   baseline: the file read in 1 MiB chunks, newlines counted (bytes.count)
    validate      as above

For each: wall time, lines per second, and the growth of peak RSS over the process's RSS just before
(Linux: VmHWM after resetting it through /proc/self/clear_refs; elsewhere ru_maxrss growth), after a
warm-up on a small file through the same code. The goal is < 64 MB of growth for every validation; the
figures go to --json for docs/benchmarks.md. The tracemalloc heap peak is measured by the test suite
(tests/unit/test_upload_validation.py, on a 20 MB stream), since tracing slows Python down several times.
The database is a fresh SQLite file in the temporary directory, never var/db.sqlite3; no API is ever
called (validation refuses the files first).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import benchlib  # noqa: E402
import memory  # noqa: E402

GOAL_MIB = 64
USERNAME = "bench-uploader"
CONNECTION = "bench-uploads"
ENDPOINT = "/v1/chat/completions"
CHUNK = 1024 * 1024
PROBE_PREFIX = "PROBE-UPLOAD "
BOUNDARY = "bench-upload-boundary-7f3a9c"
PROBES = ("read-lines", "count-lines", "validate", "view")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=200.0, help="size of each file (default 200)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    # Internal: one measurement in a child process.
    parser.add_argument("--probe", choices=PROBES, help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warmup-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- the files -----------------------------------------------------------------------------------------


def request(
    custom_id: bytes, body: bytes, *, method: bytes = b"POST", url: bytes = ENDPOINT.encode()
) -> bytes:
    return b'{"custom_id": "%s", "method": "%s", "url": "%s", "body": %s}' % (custom_id, method, url, body)


def problem_line(number: int) -> bytes:
    """Line `number`, with the problem its position in the cycle gives it."""
    custom_id = b"req-%09d" % number
    messages = b'[{"role": "user", "content": "Say hello to %s, briefly."}]' % custom_id
    body = b'{"model": "gpt-4o-mini", "messages": %s}' % messages
    kind = number % 9
    if kind == 0:
        return request(custom_id, body, method=b"GET")
    if kind == 1:
        return request(custom_id, body, url=b"/v1/embeddings")
    if kind == 2:
        return request(custom_id, b'{"messages": %s}' % messages)
    if kind == 3:
        return request(custom_id, body.replace(b"gpt-4o-mini", b"gpt-4.1"))
    if kind == 4:
        return request(custom_id, body)[:-30]  # cut short: not valid JSON
    if kind == 5:
        return request(custom_id, body.replace(b"Say hello", b"Say \xff\xfe hello"))
    if kind == 6:
        # The first line's custom_id again.
        return request(b"first", body)
    if kind == 7:
        return b""
    return b'["%s", "POST", "%s"]' % (custom_id, ENDPOINT.encode())


def valid_first_line() -> bytes:
    # Fixes the batch's model, so that kind 3 (gpt-4.1) is "a second model".
    return (
        b'{"custom_id": "first", "method": "POST", "url": "%s", "body": {"model": "gpt-4o-mini", '
        b'"messages": [{"role": "user", "content": "hi"}]}}' % ENDPOINT.encode()
    )


def write_problems_file(path: Path, size: int) -> int:
    lines = written = 0
    with path.open("wb") as handle:
        buffer = [valid_first_line()]
        number = 1
        while written < size:
            number += 1
            buffer.append(problem_line(number))
            if len(buffer) >= 10_000:
                block = b"\n".join(buffer) + b"\n"
                written += len(block)
                handle.write(block)
                lines += len(buffer)
                buffer = []
        if buffer:
            block = b"\n".join(buffer) + b"\n"
            handle.write(block)
            lines += len(buffer)
    return lines


def write_blank_file(path: Path, size: int) -> int:
    block = b"\n" * CHUNK
    with path.open("wb") as handle:
        for _ in range(size // CHUNK):
            handle.write(block)
        handle.write(b"\n" * (size % CHUNK))
    return size


def multipart_head(connection_pk: int, filename: str) -> bytes:
    fields = {
        "connection": str(connection_pk),
        "endpoint": ENDPOINT,
        "completion_window": "24h",
        "metadata": "",
    }
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    )
    return "".join(parts).encode()


def multipart_tail() -> bytes:
    return f"\r\n--{BOUNDARY}--\r\n".encode()


def write_request_body(source: Path, path: Path, connection_pk: int) -> None:
    """The multipart body a browser would send for `source`, on disk, so that posting it costs the
    measured process no memory for the body itself."""
    with path.open("wb") as out, source.open("rb") as src:
        out.write(multipart_head(connection_pk, source.name))
        while chunk := src.read(CHUNK):
            out.write(chunk)
        out.write(multipart_tail())


# --- one probe, in a child process -----------------------------------------------------------------


def _read_lines(path: Path) -> dict[str, Any]:
    count = 0
    with path.open("rb") as handle:
        for _ in handle:
            count += 1
    return {"lines": count}


def _count_lines(path: Path) -> dict[str, Any]:
    count = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            count += chunk.count(b"\n")
    return {"lines": count}


def _validate(path: Path) -> dict[str, Any]:
    from batches.results import validation

    with path.open("rb") as handle:
        report = validation.validate_upload(
            iter(lambda: handle.read(CHUNK), b""), ENDPOINT, size=path.stat().st_size
        )
    return {
        "bad_lines": report.bad_lines,
        "problems": report.problem_count,
        "kinds": dict(report.counts),
        "listed": len(report.problems),
    }


def _post(client, body_path: Path) -> dict[str, Any]:
    size = body_path.stat().st_size
    with body_path.open("rb") as body:
        environ = client._base_environ(
            REQUEST_METHOD="POST",
            PATH_INFO="/batches/new/",
            CONTENT_TYPE=f"multipart/form-data; boundary={BOUNDARY}",
            CONTENT_LENGTH=str(size),
            **{"wsgi.input": body},
        )
        response = client.handler(environ)
    page = response.content
    if response.status_code != 200 or b"nothing was uploaded" not in page:
        raise RuntimeError(f"the upload answered {response.status_code}: {page[:300]!r}")
    return {"page_bytes": len(page)}


def probe(args: argparse.Namespace) -> int:
    if args.probe in ("validate", "view"):
        benchlib.setup_django(args.database_url, migrate=False)
    client = None
    if args.probe == "view":
        from django.conf import settings
        from django.contrib.auth.models import User
        from django.test import Client

        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        client = Client()
        client.force_login(User.objects.get(username=USERNAME))

    def run(path: Path) -> dict[str, Any]:
        if args.probe == "read-lines":
            return _read_lines(path)
        if args.probe == "count-lines":
            return _count_lines(path)
        if args.probe == "validate":
            return _validate(path)
        return _post(client, path)

    run(args.warmup_file)  # imports, templates, the database connection, paid before measuring
    gc.collect()
    figures: dict[str, Any] = {"idle_rss_kib": memory.status_kib("VmRSS") or memory.max_rss_kib()}
    outcome, measured = memory.rss_growth(lambda: run(args.file))
    figures.update(outcome)
    figures.update(measured)
    print(PROBE_PREFIX + json.dumps(figures), flush=True)
    return 0


def run_probe(name: str, path: Path, warmup: Path, database_url: str) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--probe",
        name,
        "--file",
        str(path),
        "--warmup-file",
        str(warmup),
        "--database-url",
        database_url,
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    for line in result.stdout.splitlines():
        if line.startswith(PROBE_PREFIX):
            return json.loads(line.removeprefix(PROBE_PREFIX))
    raise RuntimeError(
        f"probe {name} on {path.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    )


# --- main --------------------------------------------------------------------------------------------


def prepare_database(database_url: str) -> int:
    benchlib.setup_django(database_url, migrate=True)
    from django.contrib.auth.models import User

    from accounts.roles import set_role
    from batches.models import Connection

    user = User.objects.create_user(USERNAME, password="bench-uploader-password")
    set_role(user, "operator")
    # Never contacted: every file measured here fails validation before anything is uploaded.
    connection = Connection.objects.create(
        name=CONNECTION, base_url="http://127.0.0.1:9/v1", api_key_env="BENCH_UPLOAD_UNUSED_KEY"
    )
    return connection.pk


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    size = int(args.megabytes * 1_000_000)
    database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    benchlib.start_redis()
    connection_pk = prepare_database(database_url)

    problems, blank = workdir / "problems.jsonl", workdir / "blank.jsonl"
    started = time.perf_counter()
    problem_lines = write_problems_file(problems, size)
    blank_lines = write_blank_file(blank, size)
    warm_lines = workdir / "warmup.jsonl"
    warm_lines.write_bytes(b"\n".join(problem_line(n) for n in range(2, 2000)) + b"\n")
    body, warm_body = workdir / "problems.request", workdir / "warmup.request"
    write_request_body(problems, body, connection_pk)
    write_request_body(warm_lines, warm_body, connection_pk)
    print(f"files written in {time.perf_counter() - started:.1f} s", flush=True)

    plan = [
        ("problems", "read lines (baseline)", "read-lines", problems, warm_lines),
        ("problems", "validate", "validate", problems, warm_lines),
        ("problems", "upload view (POST /batches/new/)", "view", body, warm_body),
        ("blank", "count lines (baseline)", "count-lines", blank, warm_lines),
        ("blank", "validate", "validate", blank, warm_lines),
    ]
    figures: list[dict[str, Any]] = []
    for file_name, label, probe_name, path, warmup in plan:
        print(f"{file_name}: {label} ...", flush=True)
        result = run_probe(probe_name, path, warmup, database_url)
        figures.append({"file": file_name, "label": label, "probe": probe_name, **result})
    return {
        "size": size,
        "lines": {"problems": problem_lines, "blank": blank_lines},
        "figures": figures,
    }


def build_report(args: argparse.Namespace, measured: dict[str, Any]) -> dict[str, Any]:
    size, lines = measured["size"], measured["lines"]
    baselines = {row["file"]: row["seconds"] for row in measured["figures"] if "baseline" in row["label"]}
    rows = []
    worst = 0.0
    for row in measured["figures"]:
        growth = row["rss_growth_kib"] / 1024
        if row["probe"] in ("validate", "view"):
            worst = max(worst, growth)
        count = lines[row["file"]]
        rows.append(
            [
                f"{row['file']}: {row['label']}",
                f"{row['seconds']:.2f} s",
                f"{count / row['seconds']:,.0f}",
                f"{size / 1e6 / row['seconds']:.1f}",
                f"{growth:.1f} MiB",
                f"{row['seconds'] / baselines[row['file']]:.1f}x",
            ]
        )
    met = worst < GOAL_MIB
    validate = next(r for r in measured["figures"] if r["file"] == "problems" and r["probe"] == "validate")
    view = next(r for r in measured["figures"] if r["probe"] == "view")
    text = f"largest memory growth while validating {worst:.1f} MiB (goal < {GOAL_MIB} MiB): " + (
        "met" if met else "NOT met"
    )
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(validate["kinds"].items()))
    return {
        "benchmark": "upload",
        "title": f"Validating a {size / 1e6:.0f} MB upload with a problem on every line: memory stays flat",
        "date": benchlib.now_iso(),
        "machine": benchlib.describe_machine(),
        "megabytes": args.megabytes,
        **measured,
        "table": {
            "columns": ["measurement", "seconds", "lines/s", "MB/s", "RSS growth", "vs baseline"],
            "rows": rows,
        },
        "notes": [
            f"problems file: {lines['problems']:,} lines of about {size / lines['problems']:.0f} bytes, "
            f"{validate['bad_lines']:,} of them with a problem; found: {kinds} "
            f"({validate['problems']:,} in all, {validate['listed']} listed on the page).",
            f"blank file: {lines['blank']:,} empty lines (runs of them are counted without per-line work).",
            "duplicate custom_ids are found through 64-bit hashes of at most 50,000 ids (the most requests a "
            "batch may hold; a longer file is refused anyway), so the id set stays a few MB at any size.",
            f"the upload view's page for the problems file is {view['page_bytes'] / 1024:.0f} KiB; its time "
            "includes Django's multipart parser writing the upload to a temporary file.",
            "each measurement in a fresh child process after a warm-up on a small file; RSS growth is the "
            "peak over the RSS just before (VmHWM after a reset); baseline: the same file merely read.",
        ],
        "headline": {"met": met, "worst_mib": worst, "goal_mib": GOAL_MIB, "text": text},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.probe:
        return probe(args)
    workdir = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    try:
        measured = measure(args, workdir)
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()
    data = build_report(args, measured)
    benchlib.print_report(data)
    benchlib.write_json(args.json, data)
    return 0 if data["headline"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
