"""Hugging Face hub conventions for TtT model directories: hub ids, model cards, `push_to_hub`.

A model is the directory `TtTModel.save_pretrained` writes (safetensors weights, HF `config.json`,
tokenizer, `ttt_config.json`, optionally `decoding.json`). `resolve_dir` turns a local folder *or* a hub
id ("org/name") into such a directory, offline first: an existing folder wins, then the local Hugging Face
cache (`HF_HUB_CACHE`, laid out as `models--org--name/snapshots/<commit>/`), and only then a download;
with `HF_HUB_OFFLINE=1` or no network the error says so in one line.

`huggingface_hub.PyTorchModelHubMixin` is not used: it reads and writes `config.json` as the model's
constructor arguments, while here `config.json` is the backbone's transformers config, and the mixin
would save one state dict where the directory keeps the backbone loadable by plain transformers.

The model card (`README.md`, YAML metadata + a short text) is generated from what the directory holds
(architecture, size, TtT settings, `decoding.json`) plus what only the caller knows: the training run
(`training`, e.g. data and steps) and evaluation figures (`metrics`, a `ttt eval` metrics.json). Writing a
card again keeps the training and metrics sections an earlier card of the same directory recorded.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MODEL_CARD = "README.md"
LIBRARY = "text-to-talk"
# headline metrics per task of a `ttt eval` report, as the hub's model-index task types
HEADLINE = {
    "asr": ("automatic-speech-recognition", ("wer", "cer")),
    "tts": ("text-to-speech", ("intelligibility_wer", "mcd_dtw_db", "stop_within_20pct", "dnsmos_ovrl")),
    "spoken_qa": ("audio-to-audio", ("text_accuracy", "audio_accuracy", "intelligibility_wer")),
    "text_qa": ("question-answering", ("accuracy",)),
}


def _is_hub_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if name.startswith((".", "~", "/")) or os.sep in name.replace("/", "", 1):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def resolve_dir(name_or_path: str | os.PathLike, revision: str | None = None, what: str = "TtT model") -> Path:
    """The local directory for a folder path or a hub id: folder, else HF cache, else download.

    Raises FileNotFoundError with one line saying which of these failed and why (no such folder, not
    cached and offline, hub unreachable, no such repository)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if not _is_hub_id(name):
        raise FileNotFoundError(f"no {what} in {name}: no such folder")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        return Path(snapshot_download(name, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    where = f"neither a local folder nor in the Hugging Face cache ({constants.HF_HUB_CACHE})"
    if constants.HF_HUB_OFFLINE:
        raise FileNotFoundError(f"{what} {name}: {where}, and HF_HUB_OFFLINE=1 forbids downloading it")
    try:
        return Path(snapshot_download(name, revision=revision))
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise FileNotFoundError(f"{what} {name}: {where}, and the hub has no such repository or revision "
                                f"(or it is private: log in with `hf auth login`) ({type(err).__name__})") from None
    except LocalEntryNotFoundError as err:
        cause = err.__cause__ or err.__context__
        reason = f"{type(cause).__name__}: {cause}".splitlines()[0] if cause else "no connection"
        raise FileNotFoundError(f"{what} {name}: {where}, and the hub cannot be reached ({reason}); "
                                "pass a local folder or run where the network or the cache is") from None


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def read_card(directory: str | os.PathLike) -> dict:
    """The YAML metadata of `directory`'s model card, or {} when it has none."""
    path = Path(directory) / MODEL_CARD
    if not path.is_file():
        return {}
    from huggingface_hub import ModelCard

    data = ModelCard.load(path).data
    return {**data.to_dict(), "model_name": data.model_name} if data.model_name else data.to_dict()


def training_summary(config: dict, steps: int | None = None) -> dict:
    """What a model card says about training: data files, the corpus behind them (from `ttt data build`'s
    build_card.json and the corpus's corpus_card.json when they are present), backbone, steps, optimiser."""
    data = config.get("data", {})
    out: dict[str, Any] = {"train": data.get("train"), "valid": data.get("valid")}
    build = _read_json(Path(str(data.get("train", ""))).parent / "build_card.json")
    if build.get("corpus"):
        corpus = _read_json(Path(build["corpus"]) / "corpus_card.json")
        out["corpus"] = {"path": build["corpus"], "examples": build.get("examples"),
                         "hours": corpus.get("total_hours"), "voices": sorted(corpus.get("voices", {})) or None,
                         "seed": corpus.get("seed")}
    summary = {"data": {k: v for k, v in out.items() if v is not None},
               "backbone": config.get("backbone"), "steps": steps if steps is not None else config.get("max_steps"),
               "batch_size": config.get("batch_size"), "grad_accum": config.get("grad_accum"),
               "optim": config.get("optim"), "seed": config.get("seed")}
    return {k: v for k, v in summary.items() if v is not None}


def eval_summary(metrics: dict) -> dict:
    """The headline figures of a `ttt eval` metrics.json: {task: {metric: {"value", "ci", "n"}}, "data": ...}."""
    out: dict[str, Any] = {}
    for task, (_, names) in HEADLINE.items():
        entry = metrics.get(task)
        if not isinstance(entry, dict):
            continue
        figures = {n: {"value": round(float(entry[n]), 4),
                       "ci": [round(float(c), 4) for c in (entry.get("ci") or {}).get(n) or []] or None,
                       "n": (entry.get("n_scored") or {}).get(n, entry.get("n"))}
                   for n in names if isinstance(entry.get(n), (int, float))}
        if figures:
            out[task] = figures
    if not out:
        raise ValueError("metrics has none of the tasks a `ttt eval` report holds (asr, tts, spoken_qa, text_qa)")
    data = (metrics.get("config") or {}).get("data")
    if data:
        out["data"] = data
    return out


def _parameters(directory: Path) -> int | None:
    from safetensors import safe_open

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with safe_open(str(file), "pt") as f:
            total += sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())
    return total


def write_model_card(directory: str | os.PathLike, training: dict | None = None, metrics: dict | None = None,
                     name: str | None = None) -> Path:
    """Write `directory/README.md`: hub metadata (library, tags, model-index from `metrics`, training data,
    decoding settings) and a short description. `training`: a `training_summary`; `metrics`: a `ttt eval`
    metrics.json dict. Either left out keeps what the directory's previous card recorded."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    directory = Path(directory)
    ttt_config = _read_json(directory / "ttt_config.json")
    if not ttt_config:
        raise FileNotFoundError(f"{directory} is not a TtT model directory (no ttt_config.json)")
    previous = read_card(directory)
    # plain JSON types: YAML would write tuples (e.g. Adam betas) with a Python-only tag no reader accepts
    training = json.loads(json.dumps(training)) if training is not None else previous.get("training")
    evaluation = eval_summary(metrics) if metrics is not None else previous.get("evaluation")
    backbone = _read_json(directory / "config.json")
    decoding = _read_json(directory / "decoding.json")
    params = _parameters(directory)
    name = name or previous.get("model_name") or directory.resolve().name
    results = [EvalResult(task_type=HEADLINE[task][0], task_name=task, dataset_type="ttt-eval",
                          dataset_name=str(evaluation.get("data", "ttt eval")), metric_type=metric,
                          metric_value=fig["value"])
               for task, figures in (evaluation or {}).items() if task in HEADLINE for metric, fig in figures.items()]
    model_info = {"architecture": (backbone.get("architectures") or [None])[0], "parameters": params,
                  "hidden_size": backbone.get("hidden_size"), "layers": backbone.get("num_hidden_layers"),
                  "audio_codebook_size": ttt_config.get("audio_codebook_size"), "mode": ttt_config.get("mode"),
                  "text_chunk": ttt_config.get("text_chunk"), "audio_chunk": ttt_config.get("audio_chunk")}
    data = ModelCardData(
        library_name=LIBRARY, license="apache-2.0", model_name=name, pipeline_tag="text-to-speech",
        tags=["ttt", "speech-language-model", "discrete-diffusion", "automatic-speech-recognition", "text-to-speech"],
        eval_results=results or None, ttt={k: v for k, v in model_info.items() if v is not None},
        training=training or None, evaluation=evaluation or None, decoding=decoding or None)
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_card_text(name, model_info, training, evaluation, decoding)}")
    path = directory / MODEL_CARD
    card.save(path)
    return path


def _card_text(name: str, info: dict, training: dict | None, evaluation: dict | None, decoding: dict) -> str:
    size = f"{info['parameters'] / 1e6:.1f} M parameters" if info.get("parameters") else "a"
    lines = [f"# {name}", "",
             f"A TtT speech-text language model ({size}, {info.get('architecture') or 'causal LM'} backbone, "
             f"{info.get('audio_codebook_size')} audio codes): text is generated autoregressively and speech by "
             "absorbing discrete diffusion over audio-code spans (arXiv 2509.20072), with the `ttt` library.", "",
             "```python", "from ttt.speech import SpeechLM", f'lm = SpeechLM.from_dir("{name}")   # a hub id or a local folder',
             'print(lm.speak("six plus three is nine").text)', "```", ""]
    if training:
        lines += ["## Training", "", "```yaml", _yaml(training), "```", ""]
    if evaluation:
        lines += ["## Evaluation", "", f"`ttt eval` on `{evaluation.get('data', '?')}`; 95% bootstrap intervals over items.",
                  "", "| task | metric | value | 95% CI | n |", "|---|---|---|---|---|"]
        for task, figures in evaluation.items():
            if task == "data":
                continue
            for metric, fig in figures.items():
                ci = f"[{fig['ci'][0]}, {fig['ci'][1]}]" if fig.get("ci") else ""
                lines.append(f"| {task} | {metric} | {fig['value']} | {ci} | {fig.get('n', '')} |")
        lines.append("")
    lines += ["## Decoding", "",
              (f"Measured with these settings (`decoding.json`, used by default): `{json.dumps(decoding, sort_keys=True)}`."
               if decoding else "No `decoding.json`: the defaults of `ttt.generate.GenerationConfig`."), ""]
    return "\n".join(lines)


def _yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, sort_keys=False).strip()


def push_to_hub(directory: str | os.PathLike, repo_id: str, private: bool | None = None, token: str | None = None,
                commit_message: str = "Upload TtT model") -> str:
    """Upload a model directory (writing its model card first when it has none) to `repo_id`; the commit URL."""
    from huggingface_hub import HfApi

    directory = Path(directory)
    if not (directory / "ttt_config.json").is_file():
        raise FileNotFoundError(f"{directory} is not a TtT model directory (no ttt_config.json)")
    if not (directory / MODEL_CARD).is_file():
        write_model_card(directory, name=repo_id)
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(repo_id=repo_id, folder_path=directory, commit_message=commit_message,
                                 ignore_patterns=[".*"])
    except HfHubHTTPError as err:
        raise ValueError(f"push to {repo_id}: the hub refused it ({str(err).splitlines()[0]})") from None
    except Exception as err:  # the HTTP client's own transport errors (no network, DNS, TLS)
        if "TransportError" not in {c.__name__ for c in type(err).__mro__}:
            raise
        raise ConnectionError(f"push to {repo_id}: the hub cannot be reached ({type(err).__name__}: {err})") from None
    return str(info.commit_url)


def save_and_push(save, repo_id: str, training: dict | None = None, metrics: dict | None = None, **push) -> str:
    """`save(tmpdir)` a model, card it and push it: the body of `TtTModel.push_to_hub`."""
    with tempfile.TemporaryDirectory(prefix="ttt-push-") as tmp:
        target = Path(tmp) / repo_id.split("/")[-1]
        save(target)
        write_model_card(target, training=training, metrics=metrics, name=repo_id)
        return push_to_hub(target, repo_id, **push)
