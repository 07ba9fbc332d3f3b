"""The results viewer: one self-contained HTML file to read every sample of a run (or two).

People judge an evaluation by reading samples, so the viewer shows the headline first, then a
table of every sample (virtualised, so 100,000 rows stay responsive) and each sample's full
detail. It must open offline and survive being attached to a message, so the page carries its
own CSS, JavaScript and data: no CDN, no server.

The data is embedded as JSON in ``<script type="application/json">`` tags. Model text is
arbitrary, so the JSON is escaped (``<``, ``>``, ``&`` as ``\\u003c`` …) and a response saying
``</script>`` cannot end the tag; the page's script only ever puts that text into the DOM as
text (``textContent``), never as HTML.

Records are streamed into the file one sample at a time, so the page itself is never held in
memory as one string; the workflow's single run is read as a stream too (:func:`build_viewer`),
so what it holds grows with the run only by each prompt id's position and each sample's
latency, never by the records. Samples are written in the run's file order (shard by shard),
not sorted: the page sorts them by key itself. The page's sources are package data files
beside this module (``viewer.html``, ``viewer.css``, ``viewer.js``).
"""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import tempfile
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import IO, Any

import numpy as np

from rewardflow.errors import RewardflowError
from rewardflow.generation.cache import CachedResponse, _slug
from rewardflow.jsonl import open_atomic, read_jsonl_tolerant
from rewardflow.records import ResponseRecord, ScoreRecord, read_records
from rewardflow.reporting.run_files import (
    RunFiles,
    read_responses_with_scores,
    read_summary,
    run_name,
    sample_status,
    shard_paths,
)

VIEWER_FILE = "viewer.html"

# JSON never needs these characters outside strings, and inside strings the \u escapes mean
# the same; so the escaped text parses to the same value and cannot close the script tag.
_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None: JSON has no such numbers, JSON.parse fails."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe inside ``<script type="application/json">``."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(value), ensure_ascii=False, separators=(",", ":"))
    return text.translate(_ESCAPES)


_MARKER = re.compile(r"<!--rf:title-->|/\*rf:(?:css|js|meta)\*/")


def _asset(name: str) -> str:
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    if name != "viewer.html" and re.search(r"<!--|<script|</script|</style", text, re.IGNORECASE):
        # Inlined into a script or style element, these would end it or change how it parses.
        raise RuntimeError(f"rewardflow/reporting/viewer/{name} contains a tag-like sequence")
    return text


@dataclass(frozen=True)
class ViewerStats:
    """What was written, for the rule's log and the benchmark."""

    path: Path
    samples: int
    prompts: int
    bytes: int


def _journal_latencies(cache_root: str | Path, model: str) -> Iterator[tuple[str, float]]:
    """(cache key, latency in seconds) of each usable entry of ``model``'s cache partitions
    (``<model>-<fingerprint>/``) that has a latency, in journal order. Unusable lines are
    skipped, as the cache's own reader does, and so is a latency that is not a number (the
    page would not show it)."""
    for journal in sorted(Path(cache_root).glob(f"{_slug(model)}-*/*.jsonl")):
        for entry in read_jsonl_tolerant(journal):
            try:
                cached = CachedResponse.from_dict(entry)
            except (KeyError, TypeError, ValueError):
                continue
            latency = cached.latency_s
            if isinstance(latency, bool) or not isinstance(latency, int | float):
                continue
            if isinstance(cached.key, str):
                yield cached.key, float(latency)


def cached_latencies(cache_root: str | Path, model: str, keys: Collection[str]) -> dict[str, float]:
    """Request latency in seconds by cache key, from the response cache's journals.

    Response records do not carry latency; the cache entry of each response does (the first
    entry of a key with one counts). Only the partitions of ``model`` are read, and only
    ``keys`` kept, so a large shared cache costs reading time, not memory.
    """
    latencies: dict[str, float] = {}
    if not keys:
        return latencies
    for key, latency in _journal_latencies(cache_root, model):
        if key in keys and key not in latencies:
            latencies[key] = latency
    return latencies


class LatencyTable:
    """:func:`cached_latencies` in 17 bytes a key, where a dict of the keys costs ~200: for a
    run streamed by :func:`build_viewer`, whose keys it knows only as their hashes.

    Keys are looked up by their 64-bit ``hash``: two of a run's keys (or one of them and
    another run's, in a shared cache) sharing one, some chances in 10^8 for a million keys,
    would show one sample another request's latency, a display-only error.
    """

    _CHUNK = 65_536  # journal entries matched at a time

    def __init__(self, cache_root: str | Path, model: str, key_hashes: array[int]) -> None:
        # Sized once, up front: growing arrays between the journal's parsed entries would
        # leave the freed heap in pieces, which stays resident.
        self.hashes = np.unique(np.frombuffer(key_hashes, dtype=np.int64))
        self.seconds = np.zeros(len(self.hashes))
        self.found = np.zeros(len(self.hashes), dtype=bool)
        if not len(self.hashes):
            return
        hashes, seconds = array("q"), array("d")
        for key, latency in _journal_latencies(cache_root, model):
            hashes.append(hash(key))
            seconds.append(latency)
            if len(hashes) == self._CHUNK:
                self._keep(hashes, seconds)
                hashes, seconds = array("q"), array("d")
        if hashes:
            self._keep(hashes, seconds)

    def _keep(self, hashes: array[int], seconds: array[float]) -> None:
        """Record the latencies of the run's keys among these journal entries, unless an
        earlier entry gave one."""
        chunk = np.frombuffer(hashes, dtype=np.int64)
        # A binary search in the run's sorted hashes (np.isin would sort them per chunk).
        position = np.minimum(np.searchsorted(self.hashes, chunk), len(self.hashes) - 1)
        mine = self.hashes[position] == chunk
        # np.unique's indices are each position's first occurrence: the first entry counts.
        position, first = np.unique(position[mine], return_index=True)
        latency = np.frombuffer(seconds, dtype=np.float64)[mine][first]
        new = ~self.found[position]
        self.seconds[position[new]] = latency[new]
        self.found[position[new]] = True

    def __len__(self) -> int:
        """How many of the run's keys have a latency."""
        return int(self.found.sum())

    def get(self, key: str) -> float | None:
        """The latency of cache key ``key``, or None if the cache has none."""
        wanted = hash(key)
        position = int(np.searchsorted(self.hashes, wanted))
        if position < len(self.hashes) and self.hashes[position] == wanted and self.found[position]:
            return float(self.seconds[position])
        return None


#: Request seconds by cache key: a dict (:func:`cached_latencies`) or a :class:`LatencyTable`.
Latencies = Mapping[str, float] | LatencyTable


def _sample(
    prompt_index: int,
    response: ResponseRecord,
    score: ScoreRecord | None,
    status: str,
    latency_s: float | None,
) -> dict[str, Any]:
    """One sample in the viewer's compact shape; absent fields are left out to save bytes."""
    sample: dict[str, Any] = {"p": prompt_index, "i": response.sample_index, "st": status}
    optional = {
        "l": latency_s,
        "r": response.response,
        "fr": response.finish_reason,
        "u": response.usage,
        "m": response.model,
        "e": (
            {
                "type": response.error.type,
                "message": response.error.message,
                "attempts": response.error.attempts,
            }
            if response.error
            else None
        ),
    }
    if score is not None:
        optional |= {
            "s": score.score,
            "sc": score.rewards or None,
            "se": score.error if response.error is None else None,
            "ws": score.weighted_score,
        }
    sample.update({key: value for key, value in optional.items() if value is not None})
    return sample


def _run_meta(
    name: str, path: Path, summary: dict[str, Any], truncated: int, groups: Sequence[str] | None
) -> dict[str, Any]:
    """A run's entry in the page's meta; ``truncated`` counts responses cut at max_tokens."""
    primary = summary.get("primary_reward")
    rewards = list(summary.get("rewards") or {})
    if primary in rewards:
        rewards.remove(primary)
        rewards.insert(0, primary)
    return {
        "name": name,
        "path": str(path),
        "summary": summary,
        "primary": primary,
        "rewards": rewards,
        "groups": list(groups if groups is not None else summary.get("breakdowns") or {}),
        "truncated": truncated,
    }


def _loaded_run_meta(run: RunFiles, group_fields: Sequence[str] | None) -> dict[str, Any]:
    truncated = sum(1 for r in run.responses.values() if r.finish_reason == "length")
    return _run_meta(run.name, run.path, run.summary, truncated, group_fields)


def _write_prompts(
    handle: IO[str], index: int, responses: Iterable[ResponseRecord]
) -> dict[str, int]:
    """Write one run's prompts tag, each prompt once, from its first response; return each
    prompt id's position in it.

    Responses repeat their prompt's messages, so each prompt is written once and its samples
    point at it by index: several samples per prompt cost one copy of a long prompt. The
    first response of a prompt in file order stands for it (the workflow's shards list a
    prompt's sample 0 first).
    """
    prompt_index: dict[str, int] = {}
    handle.write(f'<script type="application/json" id="rf-prompts-{index}">[')
    for response in responses:
        if response.id in prompt_index:
            continue
        prompt = {
            "id": response.id,
            "messages": response.messages,
            "ground_truth": response.ground_truth,
            "metadata": response.metadata,
        }
        handle.write(("," if prompt_index else "") + script_json(prompt))
        prompt_index[response.id] = len(prompt_index)
    handle.write("]</script>\n")
    return prompt_index


def _write_samples(
    handle: IO[str],
    index: int,
    samples: Iterable[tuple[ResponseRecord, ScoreRecord | None]],
    prompt_index: Mapping[str, int],
    latencies: Latencies,
) -> int:
    """Write one run's samples tag, in the order given; return how many there were."""
    count = 0
    handle.write(f'<script type="application/json" id="rf-samples-{index}">[')
    for response, score in samples:
        latency = latencies.get(response.cache_key) if response.cache_key else None
        status = sample_status(response, score)
        sample = _sample(prompt_index[response.id], response, score, status, latency)
        handle.write(("," if count else "") + script_json(sample))
        count += 1
    handle.write("]</script>\n")
    return count


def _write_run_data(
    handle: IO[str], run: RunFiles, index: int, latencies: Latencies
) -> tuple[int, int]:
    """Write a loaded run's prompts and samples tags, in file order; return their counts."""
    prompt_index = _write_prompts(handle, index, run.responses.values())
    pairs = ((response, run.scores.get(key)) for key, response in run.responses.items())
    return len(prompt_index), _write_samples(handle, index, pairs, prompt_index, latencies)


@dataclass(frozen=True)
class _Template:
    before_data: str
    after_data: str


def _template(title: str, meta: dict[str, Any]) -> _Template:
    page = _asset("viewer.html")
    head, sep, tail = page.partition("<!--rf:data-->")
    if not sep:
        raise RuntimeError("viewer.html lacks its <!--rf:data--> marker")
    filled = {
        "<!--rf:title-->": html.escape(title),
        "/*rf:css*/": _asset("viewer.css"),
        "/*rf:js*/": _asset("viewer.js"),
        "/*rf:meta*/": script_json(meta),
    }
    # One pass, so a marker-like string inside a filled-in value is never replaced again.
    head = _MARKER.sub(lambda match: filled[match.group(0)], head)
    return _Template(head, tail)


def _write_page(
    out: str | Path,
    title: str,
    meta: dict[str, Any],
    write_data: Callable[[IO[str]], tuple[int, int]],
) -> ViewerStats:
    """Write the page atomically: the template around what ``write_data`` writes (the data
    tags), which returns the numbers of prompts and samples written."""
    template = _template(f"rewardflow: {title}", meta)
    out = Path(out)
    with open_atomic(out) as handle:
        handle.write(template.before_data)
        prompts, samples = write_data(handle)
        handle.write(template.after_data)
    return ViewerStats(out, samples, prompts, out.stat().st_size)


def _page_meta(runs: list[dict[str, Any]], comparison: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "mode": "run" if len(runs) == 1 else "compare",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": runs,
        "comparison": comparison,
    }


def write_viewer(
    runs: Sequence[RunFiles],
    out: str | Path,
    group_fields: Sequence[str] | None = None,
    comparison: dict[str, Any] | None = None,
    latencies: Mapping[str, float] | None = None,
) -> ViewerStats:
    """Write the viewer for loaded runs: one run, or the paired view of a baseline and a
    candidate (``rewardflow compare``, which pairs the runs' prompts by key anyway).

    ``group_fields`` are the metadata fields offered as filters and columns (default: the
    summary's breakdowns); ``comparison`` is the paired test's result, shown in the headline;
    ``latencies`` maps cache keys to request seconds (:func:`cached_latencies`). One run
    from its directory is :func:`build_viewer`, which streams it instead of loading it.
    """
    if len(runs) not in (1, 2):
        raise RewardflowError(f"the viewer shows one run or a pair, not {len(runs)} runs")
    meta = _page_meta([_loaded_run_meta(run, group_fields) for run in runs], comparison)

    def write_data(handle: IO[str]) -> tuple[int, int]:
        prompts = samples = 0
        for index, run in enumerate(runs):
            run_prompts, run_samples = _write_run_data(handle, run, index, latencies or {})
            prompts, samples = prompts + run_prompts, samples + run_samples
        return prompts, samples

    return _write_page(out, " vs ".join(run.name for run in runs), meta, write_data)


class _ResponseTally:
    """What the page's meta and the latencies need from a pass over the responses: the
    truncated responses and the cache keys' hashes (8 bytes a sample, for a LatencyTable)."""

    def __init__(self) -> None:
        self.truncated = 0
        self.key_hashes: array[int] = array("q")

    def count(self, responses: Iterable[ResponseRecord]) -> Iterator[ResponseRecord]:
        for response in responses:
            self.truncated += response.finish_reason == "length"
            if response.cache_key:
                self.key_hashes.append(hash(response.cache_key))
            yield response


@dataclass(frozen=True)
class ViewerData:
    """What :func:`write_viewer_data` wrote, and what the page's meta needs from that pass."""

    prompts: int
    samples: int
    #: Responses cut off at ``max_tokens``, which the page's headline counts.
    truncated: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def write_viewer_data(
    response_paths: Sequence[str | Path],
    score_paths: Sequence[str | Path],
    out: str | Path,
    cache_root: str | Path | None = None,
    model: str | None = None,
) -> ViewerData:
    """Write one run's prompts and samples tags (the page's data, run index 0) to ``out``.

    This is the pass over every sample, and it needs no summary: the workflow runs it
    (``build_viewer_data``) beside the summary step, and only the page around it
    (:func:`assemble_viewer`, ``build_viewer``) waits for ``summary.json``. With
    ``cache_root`` and ``model`` (the configured model name, which names the cache partition)
    each generated sample also shows its request latency.

    The run is streamed, never loaded: a first pass over the responses writes the prompts tag
    to a scratch file (the latencies need the run's cache keys, known only after that pass), a
    second joins each response with its score and writes its sample. What stays in memory is
    each prompt id's position, the latencies, and one score shard at a time (the join of
    :func:`~rewardflow.reporting.run_files.read_responses_with_scores`), which also refuses a
    repeated key, with its file and line, as :func:`~rewardflow.reporting.run_files.load_run`
    does. ``out`` is written atomically.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(
        "w+", encoding="utf-8", dir=out.parent, prefix=f".{out.name}.prompts."
    ) as prompts_part:
        tally = _ResponseTally()
        responses = read_records(response_paths, ResponseRecord.from_dict)
        prompt_index = _write_prompts(prompts_part, 0, tally.count(responses))
        latencies: Latencies = {}
        if cache_root is not None and model:
            latencies = LatencyTable(cache_root, model, tally.key_hashes)
        del tally.key_hashes
        with open_atomic(out) as handle:
            prompts_part.seek(0)
            shutil.copyfileobj(prompts_part, handle)
            samples = read_responses_with_scores(response_paths, score_paths)
            count = _write_samples(handle, 0, samples, prompt_index, latencies)
    return ViewerData(len(prompt_index), count, tally.truncated)


def assemble_viewer(
    summary_path: str | Path,
    data_path: str | Path,
    data: ViewerData,
    out: str | Path,
    group_fields: Sequence[str] | None = None,
) -> ViewerStats:
    """The page around :func:`write_viewer_data`'s tags: the headline from ``summary.json``.

    ``group_fields`` are the metadata fields offered as filters and columns (default: the
    summary's breakdowns). Copying the data tags costs a fraction of writing them.
    """
    summary_path = Path(summary_path)
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    run_dir = summary_path.parent
    name = run_name(run_dir, summary)
    meta = _page_meta([_run_meta(name, run_dir, summary, data.truncated, group_fields)], None)

    def write_data(handle: IO[str]) -> tuple[int, int]:
        with open(data_path, encoding="utf-8") as part:
            shutil.copyfileobj(part, handle)
        return data.prompts, data.samples

    return _write_page(out, name, meta, write_data)


def build_viewer(
    run_dir: str | Path,
    out: str | Path,
    group_fields: Sequence[str] | None = None,
    cache_root: str | Path | None = None,
    model: str | None = None,
) -> ViewerStats:
    """``results/<run>/`` -> its viewer in one call: :func:`write_viewer_data` into a scratch
    file beside ``out``, then :func:`assemble_viewer` (the workflow runs the two as rules of
    their own, so that the pass over the samples need not wait for the summary)."""
    run_dir = Path(run_dir)
    read_summary(run_dir)  # not a finished run: say so before reading every shard
    response_paths, score_paths = shard_paths(run_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as scratch:
        data_path = Path(scratch) / "data.html"
        data = write_viewer_data(response_paths, score_paths, data_path, cache_root, model)
        return assemble_viewer(run_dir / "summary.json", data_path, data, out, group_fields)
