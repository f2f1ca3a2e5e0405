"""Text for tables and captions in LaTeX and Markdown: escaping, numbers, "mean ± std", model names.

Every table, the comparison with the paper and the figures name models and format numbers
through here, so that one model is spelled one way everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .stats import Stat

#: the order models appear in, in tables and figures (others follow, alphabetically);
#: table specs add theirs with :func:`register_model`
MODEL_ORDER: list[str] = ["ae", "nvae", "svae", "psvae"]
MODEL_NAMES: dict[str, str] = {"ae": "AE", "nvae": "N-VAE", "svae": "S-VAE", "psvae": "PS-VAE"}
EMPTY_TEXT = "–"  # en dash, Markdown
EMPTY_LATEX = "--"

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))
_MD_RE = re.compile(r"([\\`*_|\[\]<>])")


def register_model(model: str, name: str | None = None) -> None:
    """Show ``model`` after the models known so far, as ``name`` (default: the key itself)."""
    if model not in MODEL_ORDER:
        MODEL_ORDER.append(model)
    MODEL_NAMES[model] = name or model


def model_name(model: str) -> str:
    """The display name of a model key ("svae" -> "S-VAE"); unknown keys as they are."""
    return MODEL_NAMES.get(model, model)


def model_rank(model: str) -> tuple[int, str]:
    """Sort key of a model key: :data:`MODEL_ORDER` first, then others alphabetically."""
    return (MODEL_ORDER.index(model), "") if model in MODEL_ORDER else (len(MODEL_ORDER), model)


def ordered_models(models: Iterable[str]) -> list[str]:
    return sorted(set(models), key=model_rank)


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters (& % $ # _ { } ~ ^ \\) in plain text."""
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group()], str(text))


def markdown_escape(text: str) -> str:
    """Backslash-escape characters that Markdown tables or emphasis would interpret."""
    return _MD_RE.sub(r"\\\1", str(text))


def fmt_number(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals, never "-0.00"."""
    text = f"{value:.{decimals}f}"
    return text[1:] if re.fullmatch(r"-0\.?0*", text) else text


def format_mean_std(stat: Stat, decimals: int, latex: bool = False, bold: bool = False) -> str:
    """ "mean ± std" (plain) or ``$mean \\pm std$`` (LaTeX); the mean alone when n = 1."""
    mean = fmt_number(stat.mean, decimals)
    if latex:
        body = f"{mean} \\pm {fmt_number(stat.std, decimals)}" if stat.n > 1 else mean
        return f"{{\\boldmath${body}$}}" if bold else f"${body}$"
    text = f"{mean} ± {fmt_number(stat.std, decimals)}" if stat.n > 1 else mean
    return f"**{text}**" if bold else text


@dataclass(frozen=True)
class Markup:
    """The few symbols captions need, in LaTeX or in plain (Markdown) text."""

    latex: bool

    def text(self, value: str) -> str:
        return latex_escape(value) if self.latex else markdown_escape(value)

    def math(self, tex: str, plain: str) -> str:
        return f"${tex}$" if self.latex else plain

    def code(self, value: str) -> str:
        return r"\texttt{" + latex_escape(value) + "}" if self.latex else "`" + value.replace("`", "'") + "`"

    @property
    def empty(self) -> str:
        """An empty cell."""
        return EMPTY_LATEX if self.latex else EMPTY_TEXT


def budget_text(budgets: Sequence[str], mk: Markup) -> str:
    """The budgets for captions, e.g. ", budget laptop" ("" when the runs have no budget)."""
    if not budgets:
        return ""
    return (", budget " if len(budgets) == 1 else ", budgets ") + ", ".join(mk.text(b) for b in budgets)
