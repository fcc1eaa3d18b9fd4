"""Trace -> judge request: sampled frames, the serialised reasoning trace, and the rendered templates.

The request's content hash (templates' output + the sampled frames' bytes) is computed before any image is
encoded, so a cache hit costs a frames read and a template render, not a PNG encode.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
import numpy as np

from vlascore.images import encode_png, sample_indices
from vlascore.judging.definitions import FrameSettings, JudgeSpec, TraceSettings
from vlascore.judging.inputs import JudgeInput
from vlascore.judging.judgement import Mode, dimensions_for

REASONING_TAG = "policy_reasoning"
INSTRUCTION_TAG = "task_instruction"
DATA_TAGS = (INSTRUCTION_TAG, REASONING_TAG)
"""The judge templates' data blocks: text from the run under evaluation goes between these tags, and no such tag may
survive in it, however it is disguised."""
TAG_REMOVED = "[tag removed]"

# Brackets that read as '<' and '>' but that NFKC leaves as they are.
_BRACKETS = str.maketrans(
    dict.fromkeys("\u2039\u3008\u27e8\u300a\u276e\u276c\u29fc\u2991\u02c2\u1438", "<")
    | dict.fromkeys("\u203a\u3009\u27e9\u300b\u276f\u276d\u29fd\u2992\u02c3\u1433", ">")
)
_INVISIBLE_LETTERS = frozenset("\u034f\u115f\u1160\u3164\uffa0\u2800")
"""Characters that render as nothing but are not format characters: combining grapheme joiner, Hangul fillers,
the blank Braille pattern (variation selectors are caught by their range)."""
_MAX_ROUNDS = 64
"""Bound on normalising rounds (each decodes one more level of entities; real text needs one or two)."""


def _visible(ch: str) -> str:
    """`ch`, or what stands in for it once invisible and control characters are dropped."""
    if ch in "\n\t":
        return ch
    category = unicodedata.category(ch)
    if category in ("Zl", "Zp"):
        return "\n"
    if category == "Zs":
        return " "
    if category[0] == "C" or ch in _INVISIBLE_LETTERS or 0xFE00 <= ord(ch) <= 0xFE0F or 0xE0100 <= ord(ch) <= 0xE01EF:
        return ""  # controls, format (zero-width, bidi), private use, surrogates, unassigned; variation selectors
    return ch


def _letter(c: str) -> str:
    """A tag name's letter, or any one non-ASCII letter-like character standing in for it (a homoglyph)."""
    return f"(?:[{c}{c.upper()}]|[^\\x00-\\x7f\\s<>])"


def _name_pattern(name: str, separators: str) -> str:
    letters = [c for c in name if c.isalpha()]
    return separators.join(_letter(c) for c in letters)


_MARKS = "\\u0300-\\u036f\\u1ab0-\\u1aff\\u20d0-\\u20ff"  # combining marks that may sit on a letter
_TIGHT = f"[_\\-.·{_MARKS}]*"  # how a tag name's words may be joined when it stands alone
_LOOSE = f"[\\s_\\-.·{_MARKS}]*"  # and when a bracket marks it as a tag
_TAG_RE = re.compile(
    "|".join(
        rf"<\s*/?\s*{_name_pattern(n, _LOOSE)}(?:\s*/?\s*>)?"  # an opening or closing tag, brackets and all
        rf"|{_name_pattern(n, _LOOSE)}\s*/?\s*>"  # its end, after a bracket that another step removed
        rf"|{_name_pattern(n, _TIGHT)}"  # the bare name
        for n in DATA_TAGS
    )
)
_NAME_LETTERS = min(sum(c.isalpha() for c in n) for n in DATA_TAGS)


def _drop_tag(m: re.Match[str]) -> str:
    """A match stands for a data tag when it has both brackets (a tag, whatever its letters look like), or when at
    least half its letters are the tag's own (so a run of other scripts' letters is not taken for one)."""
    found = m.group()
    if found.startswith("<") and found.endswith(">"):
        return TAG_REMOVED
    ascii_letters = sum(c.isascii() and c.isalpha() for c in found)
    return TAG_REMOVED if 2 * ascii_letters >= _NAME_LETTERS else found


def normalise(text: str) -> str:
    """Text as a reader would see it: HTML entities decoded, NFKC (full-width and styled letters and brackets become
    ASCII), invisible and control characters dropped (zero-width, bidi controls, variation selectors...), bracket
    look-alikes made '<' and '>'; repeated until stable, since each step can reveal work for another."""
    for _ in range(_MAX_ROUNDS):
        before = text
        if "&" in text:
            text = html.unescape(text)
        if not text.isascii():
            text = unicodedata.normalize("NFKC", text)
        if not text.isprintable():
            text = "".join(_visible(ch) for ch in text)
        text = text.translate(_BRACKETS)
        if text == before:
            break
    return text


def _clean(text: object) -> str:
    """Untrusted text (policy output, an instruction from a run) as inert data for a data block: normalised FIRST
    (see `normalise`), then every data tag removed, in any case, split by spaces or separators, with look-alike
    letters, nested (removing one must not form another) or without its brackets."""
    s = "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text)
    for _ in range(_MAX_ROUNDS):
        before = s
        s = _TAG_RE.sub(_drop_tag, normalise(s))
        if s == before:
            break
    return s.strip()


def serialise_trace(inp: JudgeInput, settings: TraceSettings) -> str:
    """**[decision]** one line per run of identical consecutive texts, with its step range:
    `[steps 3-11] <reasoning> | intention: <intention>`; long traces keep head and tail."""
    steps = inp.steps
    clean = lru_cache(maxsize=None)(_clean)  # per-step texts repeat: clean each distinct one once
    reasoning = [clean(r) for r in steps["reasoning"]] if len(steps) else []
    intention = [clean(i) for i in steps["intention"]] if len(steps) and settings.include_intention else []
    texts = [(r, intention[k] if intention else "") for k, r in enumerate(reasoning)]
    lines: list[str] = []
    k = 0
    while k < len(texts):
        end = k
        if settings.collapse_repeats:
            while end + 1 < len(texts) and texts[end + 1] == texts[k]:
                end += 1
        r, i = texts[k]
        if r or i:
            where = (
                f"[step {int(steps['step'].iloc[k])}]"
                if end == k
                else (f"[steps {int(steps['step'].iloc[k])}-{int(steps['step'].iloc[end])}]")
            )
            lines.append(" ".join(p for p in (where, r, f"| intention: {i}" if i else "") if p))
        k = end + 1
    text = "\n".join(lines) if lines else "(no reasoning text was produced)"
    if len(text) > settings.max_chars:
        half = settings.max_chars // 2
        cut = len(text) - 2 * half
        text = f"{text[:half]}\n[... {cut} characters cut ...]\n{text[-half:]}"
    return text


def _resize(frames: np.ndarray, resolution: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour downscale to fit (width, height); **[decision]** frames are never upscaled."""
    h, w = frames.shape[1:3]
    scale = min(1.0, resolution[0] / w, resolution[1] / h)
    if scale >= 1.0:
        return frames
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    rows = (np.arange(nh) * h // nh).astype(int)
    cols = (np.arange(nw) * w // nw).astype(int)
    return frames[:, rows][:, :, cols]


def _grid(frames: np.ndarray, columns: int) -> np.ndarray:
    n, h, w, c = frames.shape
    cols = min(columns, n)
    rows = -(-n // cols)
    canvas = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    for k, frame in enumerate(frames):
        r, q = divmod(k, cols)
        canvas[r * h : (r + 1) * h, q * w : (q + 1) * w] = frame
    return canvas


def sample_frames(
    inp: JudgeInput, settings: FrameSettings, loaded: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, list[int]]:
    """(frames K x H x W x 3 at the judge's resolution, the step index of each), first and last included.
    `loaded`: the episode's frames and their steps when already read."""
    frames, steps = loaded if loaded is not None else inp.load_frames()
    idx = sample_indices(len(frames), settings.count)
    return _resize(np.asarray(frames[idx]), settings.resolution), [int(steps[k]) for k in idx]


@dataclass
class JudgeRequest:
    """A rendered request: system and user text, the images, and its content hash."""

    system: str
    user: str
    images: list[np.ndarray]
    key: str
    examples: list[str]

    def messages(self) -> list[dict[str, Any]]:
        """OpenAI chat messages; frames as PNG data URIs after the user text, in time order."""
        parts: list[dict[str, Any]] = [{"type": "text", "text": self.user}]
        for image in self.images:
            uri = "data:image/png;base64," + base64.b64encode(encode_png(image, level=6)).decode("ascii")
            parts.append({"type": "image_url", "image_url": {"url": uri}})
        return [{"role": "system", "content": self.system}, {"role": "user", "content": parts}]


_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
_compile = lru_cache(maxsize=64)(_ENV.from_string)  # templates are compiled once per text, not per episode


def example_view(entry: Any, mode: Mode) -> dict[str, Any]:
    """A KB entry as the template's Example slot shows it: only the dimensions this mode asks."""
    result = {k: entry.scores[k] for k in dimensions_for(mode) if k in entry.scores}
    return {
        "instruction": _clean(entry.instruction),
        "category": entry.category,
        "success": entry.success,
        "rationale": _clean(entry.rationale),
        "result": json.dumps(result),
    }


def render_request(
    inp: JudgeInput,
    spec: JudgeSpec,
    mode: Mode,
    examples: list[Any] | None = None,
    frames: tuple[np.ndarray, list[int]] | None = None,
) -> JudgeRequest:
    """Render the judge's templates for one episode. `frames` may be passed when already sampled."""
    images, frame_steps = frames if frames is not None else sample_frames(inp, spec.frames)
    keys = list(dimensions_for(mode))
    order = ["Reasoning", "Action", "Intention", "Alignment"]  # the spec's table order
    keys.sort(key=order.index)
    actions = ""
    if spec.trace.include_actions and len(inp.steps):
        by_step = dict(zip(inp.steps["step"], inp.steps["action"], strict=True))
        actions = "; ".join(
            f"step {s}: " + ", ".join(f"{v:.2f}" for v in by_step[s]) for s in frame_steps if s in by_step
        )
    variables = {
        "mode": mode,
        "dimension_keys": keys,
        "n_frames": len(images),
        "layout": spec.frames.layout,
        "examples": [example_view(e, mode) for e in examples or []],
        "instruction": _clean(inp.episode.instruction),
        "reasoning": serialise_trace(inp, spec.trace) if mode == "reasoning" else "",
        "actions": actions,
    }
    try:
        system = _compile(spec.template_texts["system"]).render(variables).strip()
        user = _compile(spec.template_texts["user"]).render(variables).strip()
    except (jinja2.TemplateError, KeyError) as exc:
        raise ValueError(f"judge {spec.name!r}: cannot render its templates ({spec.source}): {exc}") from exc
    sent = [_grid(images, spec.frames.grid_columns)] if spec.frames.layout == "grid" else list(images)
    digest = hashlib.sha256()
    for part in (system, user):
        digest.update(part.encode())
        digest.update(b"\0")
    for image in sent:
        digest.update(str(image.shape).encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    return JudgeRequest(system, user, sent, digest.hexdigest(), [getattr(e, "id", "") for e in examples or []])
