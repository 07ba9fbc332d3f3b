"""Typed settings of the generation stage, and the one definition of what decides a response.

Every class here is built once from the VALIDATED config (the schema has filled every default,
so nothing is re-defaulted here) and then passed to the functions that need it: nothing in
:mod:`rewardflow.generation` indexes the raw config dict.

Each key of the ``generation``, ``simulator`` and ``model.launch`` sections is in exactly one
class (a unit test checks that the classes cover the schema, so a new key must be placed):

* it decides each response's content: part of :class:`ResponseIdentity`, so of the cache key
  and of the generation rule's params;
* it decides which samples a shard holds, not what any one of them says (``samples``): a param,
  not in the cache key;
* it is operational (concurrency, timeouts, retries, rate limits, latency): in neither, so
  changing it reruns nothing and invalidates no cached response.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Self

from rewardflow.config.paths import run_dir
from rewardflow.config.prompts import PromptSettings
from rewardflow.config.shard_jobs import jobs_per_step


def content_sha256(value: Any) -> str:
    """SHA-256 of ``value`` as canonical JSON: the digest every cache identity is made of."""
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ResponseIdentity:
    """Everything besides the messages and sample index that decides a response's content.

    The cache partitions and keys responses by it (``fingerprint``), the generation rule's
    params hold the ``generation`` keys it is made of (:data:`RESPONSE_GENERATION_KEYS`), and
    the LLM judge keys its verdicts by it too. Operational knobs are deliberately absent:
    changing them must never invalidate a cached response. The field names are part of every
    existing cache key: renaming one orphans the cache.
    """

    model: str
    #: The endpoint as it decides answers (see rewardflow.generation.endpoint.endpoint_identity).
    endpoint: str
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    extra_body: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, sampling: GenerationJobSettings, model: str, endpoint: str) -> Self:
        """The identity of the responses a generation job asks ``model`` at ``endpoint`` for."""
        return cls(
            model=model,
            endpoint=endpoint,
            **{name: getattr(sampling, name) for name in RESPONSE_GENERATION_KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop) if self.stop else None
        data["extra_body"] = dict(self.extra_body)
        return data

    @property
    def fingerprint(self) -> str:
        return content_sha256(self.to_dict())

    def seed_for(self, sample_index: int) -> int | None:
        """Per-sample seed: with one fixed seed, n samples would all be the same answer."""
        return None if self.seed is None else self.seed + sample_index


#: ``generation`` keys that decide each response: the sampling fields of ResponseIdentity.
RESPONSE_GENERATION_KEYS: tuple[str, ...] = tuple(
    f.name for f in fields(ResponseIdentity) if f.name not in ("model", "endpoint")
)
#: ``generation`` keys that decide which samples a shard holds, but not what any one says.
SHARD_GENERATION_KEYS: tuple[str, ...] = ("enabled", "samples", "independent_samples")
#: ``generation`` keys that change how responses are fetched, never what they are.
OPERATIONAL_GENERATION_KEYS = frozenset(
    {
        "concurrency",
        "timeout_s",
        "max_attempts",
        "max_failed_fraction",
        "max_request_time_s",
        "requests_per_minute",
        "tokens_per_minute",
        "parallel_jobs",
        "adaptive_rate",
    }
)
#: ``simulator`` keys that decide the simulator's answers (its endpoint identity).
SIMULATOR_ANSWER_KEYS: tuple[str, ...] = ("rule", "responses", "wrong_rate")
#: ``simulator`` keys for its latency only; ``seed`` seeds the latency draws, not the answers.
OPERATIONAL_SIMULATOR_KEYS = frozenset(
    {"latency_ms", "latency_jitter_ms", "latency_distribution", "latency_sigma", "seed"}
)
#: ``model.launch`` keys that decide the server's answers (its command).
LAUNCH_ANSWER_KEYS: tuple[str, ...] = ("preset", "command", "args", "model_path")
#: ``model.launch`` keys that change how the server is started or used, never what it answers.
OPERATIONAL_LAUNCH_KEYS = frozenset(
    {"startup_timeout_s", "gpus", "concurrency", "rate_limits", "ready_path", "share"}
)


def _only(section: Mapping[str, Any], keys: tuple[str, ...] | frozenset[str]) -> dict[str, Any]:
    # The section's own order (sorted by ``canonical``): Snakemake compares params by repr.
    return {key: value for key, value in section.items() if key in keys}


def generation_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that decide a shard's responses: the generation rule's rerun trigger.

    Derived from the same key lists as the response identity, so what reruns a shard and what
    misses the cache cannot drift apart.
    """
    model = config["model"]
    # Unset options and launch are left out, so that configs written before these keys existed
    # keep the params their finished shards were made with (and are not rerun).
    model_params = {key: value for key, value in model.items() if key not in ("options", "launch")}
    if model["options"]:
        model_params["options"] = model["options"]
    if model["launch"] is not None:
        model_params["launch"] = _only(model["launch"], LAUNCH_ANSWER_KEYS)
    return {
        "model": model_params,
        "generation": _only(
            config["generation"], (*RESPONSE_GENERATION_KEYS, *SHARD_GENERATION_KEYS)
        ),
        # Raising the budget must rerun shards that stopped short; the cache makes a rerun of
        # a finished shard free, so the whole budget can simply be a param.
        "budget": dict(config["budget"]),
        "simulator": _only(config["simulator"], SIMULATOR_ANSWER_KEYS)
        if model["provider"] == "simulator"
        else None,
    }


@dataclass(frozen=True, slots=True)
class GenerationJobSettings:
    """The ``generation`` section minus its rate limits (:class:`RateSettings`)."""

    enabled: bool
    samples: int
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...] | None
    seed: int | None
    independent_samples: bool
    extra_body: Mapping[str, Any]
    concurrency: int
    timeout_s: float
    max_attempts: int
    max_failed_fraction: float
    max_request_time_s: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        generation = config["generation"]
        stop = generation["stop"]
        if isinstance(stop, str):
            stop = [stop]
        return cls(
            enabled=bool(generation["enabled"]),
            samples=int(generation["samples"]),
            temperature=float(generation["temperature"]),
            top_p=float(generation["top_p"]),
            max_tokens=int(generation["max_tokens"]),
            stop=tuple(stop) if stop else None,
            seed=generation["seed"],
            independent_samples=bool(generation["independent_samples"]),
            extra_body=dict(generation["extra_body"]),
            concurrency=int(generation["concurrency"]),
            timeout_s=float(generation["timeout_s"]),
            max_attempts=int(generation["max_attempts"]),
            max_failed_fraction=float(generation["max_failed_fraction"]),
            max_request_time_s=float(generation["max_request_time_s"]),
        )


@dataclass(frozen=True, slots=True)
class RateSettings:
    """The run's rate limits (``generation.requests_per_minute`` and friends), which the
    generation jobs running at once split between them."""

    requests_per_minute: float | None
    tokens_per_minute: float | None
    adaptive_rate: bool
    parallel_jobs: int
    #: How many generation jobs can run at once: ``parallel_jobs``, or fewer jobs (one per shard
    #: or group of shards, rewardflow.config.shard_jobs).
    jobs_sharing_limits: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        generation = config["generation"]
        parallel_jobs = int(generation["parallel_jobs"])
        return cls(
            requests_per_minute=generation["requests_per_minute"],
            tokens_per_minute=generation["tokens_per_minute"],
            adaptive_rate=bool(generation["adaptive_rate"]),
            parallel_jobs=parallel_jobs,
            jobs_sharing_limits=min(parallel_jobs, jobs_per_step(config)),
        )


@dataclass(frozen=True, slots=True)
class LaunchSettings:
    """``model.launch``: the model server the generation jobs start (and share) on their node."""

    preset: str | None
    command: str | None
    args: str
    model_path: str | None
    ready_path: str | None
    startup_timeout_s: float
    gpus: int
    concurrency: int
    rate_limits: bool
    share: bool = True

    @classmethod
    def from_section(cls, launch: Mapping[str, Any]) -> Self:
        """From ``model.launch`` as validated (the schema fills its keys' defaults)."""
        return cls(
            preset=launch["preset"],
            command=launch["command"],
            args=launch["args"],
            model_path=launch["model_path"],
            ready_path=launch["ready_path"],
            startup_timeout_s=float(launch["startup_timeout_s"]),
            gpus=int(launch["gpus"]),
            concurrency=int(launch["concurrency"]),
            rate_limits=bool(launch["rate_limits"]),
            share=bool(launch["share"]),
        )


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    """The ``simulator`` section: the built-in server of ``model.provider: simulator``."""

    rule: str
    responses: str | None
    wrong_rate: float
    latency_ms: float
    latency_jitter_ms: float
    latency_distribution: str
    latency_sigma: float
    seed: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        simulator = config["simulator"]
        return cls(**{f.name: simulator[f.name] for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """The ``model`` section: which model, at which endpoint, through which client.

    ``simulator`` is set exactly when ``provider`` is ``simulator``: the built-in server is
    then the model, and its settings decide its answers.
    """

    provider: str
    name: str
    base_url: str | None
    api_key_env: str | None
    options: Mapping[str, Any]
    launch: LaunchSettings | None
    simulator: SimulatorSettings | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        model = config["model"]
        launch = model["launch"]
        return cls(
            provider=model["provider"],
            name=model["name"],
            base_url=model["base_url"],
            api_key_env=model["api_key_env"],
            options=dict(model["options"]),
            launch=None if launch is None else LaunchSettings.from_section(launch),
            simulator=SimulatorSettings.from_config(config)
            if model["provider"] == "simulator"
            else None,
        )


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """The ``cache`` section: where responses are kept and found."""

    dir: str
    shared: bool
    run_name: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        cache = config["cache"]
        return cls(dir=cache["dir"], shared=bool(cache["shared"]), run_name=config["run_name"])

    @property
    def root(self) -> Path:
        """The shared cache, or with ``cache.shared: false`` one private to this run."""
        return Path(self.dir) if self.shared else run_dir(self.run_name) / "cache"


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million prompt and completion tokens (``prices.<model name>``)."""

    prompt: float
    completion: float

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6

    @classmethod
    def of_model(cls, config: Mapping[str, Any]) -> Self | None:
        """The configured model's price, or None when ``prices`` does not list it."""
        entry = config["prices"].get(config["model"]["name"])
        return cls(float(entry["prompt"]), float(entry["completion"])) if entry else None


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """The ``budget`` section, and what each shard's job may spend of it."""

    max_tokens: float | None
    max_cost_usd: float | None
    price: Price | None
    shards: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        budget = config["budget"]
        return cls(
            max_tokens=budget["max_tokens"],
            max_cost_usd=budget["max_cost_usd"],
            price=Price.of_model(config),
            shards=int(config["shards"]),
        )

    @property
    def limited(self) -> bool:
        return self.max_tokens is not None or self.max_cost_usd is not None

    @property
    def shard_max_tokens(self) -> float | None:
        """A shard's share, so the shares add up to the budget whatever runs at once."""
        return None if self.max_tokens is None else self.max_tokens / self.shards

    @property
    def shard_max_cost_usd(self) -> float | None:
        return None if self.max_cost_usd is None else self.max_cost_usd / self.shards


@dataclass(frozen=True, slots=True)
class GenerationStageSettings:
    """Everything one generation job reads, built once from the validated config."""

    run_name: str
    shards: int
    generation: GenerationJobSettings
    rate: RateSettings
    model: ModelSettings
    cache: CacheSettings
    budget: BudgetSettings
    #: For each sample's view of its prompt (``prompt.shuffle_options``).
    prompt: PromptSettings

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        return cls(
            run_name=config["run_name"],
            shards=int(config["shards"]),
            generation=GenerationJobSettings.from_config(config),
            rate=RateSettings.from_config(config),
            model=ModelSettings.from_config(config),
            cache=CacheSettings.from_config(config),
            budget=BudgetSettings.from_config(config),
            prompt=PromptSettings.from_config(config),
        )
