"""Text for tables and captions in LaTeX and Markdown: escaping, numbers, "mean ± std", model names.

Every table, the comparison with the paper and the figures name models and format numbers
through here, so that one model is spelled one way everywhere.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..records.record import unprintable
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
    # not special in themselves, but OT1 prints < > | as other glyphs, and a cell starting with
    # [ or * right after \\ or a booktabs rule would be read as an optional argument or a star
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "[": "{[}",
    "]": "{]}",
    "*": "{*}",
}
#: combining accents (after NFKD decomposition) -> the LaTeX accent command (OT1 has these);
#: other combining marks are dropped, keeping the letter
_LATEX_ACCENTS = {
    "\u0300": "`",
    "\u0301": "'",
    "\u0302": "^",
    "\u0303": "~",
    "\u0304": "=",
    "\u0306": "u",
    "\u0307": ".",
    "\u0308": '"',
    "\u030a": "r",
    "\u030b": "H",
    "\u030c": "v",
    "\u0323": "d",
    "\u0327": "c",
    "\u0331": "b",
}
#: the Greek alphabet from U+0391 (upper case; U+03A2 is unassigned) and from U+03B1 (lower case):
#: LaTeX math names, or the Latin letter where LaTeX has no command (upper-case Alpha is A)
_GREEK_UPPER = "A B Gamma Delta E Z H Theta I K Lambda M N Xi O Pi P - Sigma T Upsilon Phi X Psi Omega".split()
_GREEK_LOWER = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi o pi rho varsigma sigma tau "
    "upsilon phi chi psi omega"
).split()


def _greek(name: str) -> str:
    return name if len(name) == 1 else rf"\ensuremath{{\{name}}}"


#: non-ASCII characters with a plain-LaTeX spelling (Greek as math, so that no package is needed)
_LATEX_CHARS = {
    **{chr(0x391 + i): _greek(name) for i, name in enumerate(_GREEK_UPPER) if name != "-"},
    **{chr(0x3B1 + i): _greek(name) for i, name in enumerate(_GREEK_LOWER)},
    "ß": r"\ss{}",
    "æ": r"\ae{}",
    "Æ": r"\AE{}",
    "œ": r"\oe{}",
    "Œ": r"\OE{}",
    "ø": r"\o{}",
    "Ø": r"\O{}",
    "ł": r"\l{}",
    "Ł": r"\L{}",
    "ı": r"\i{}",
    "–": "--",
    "—": "---",
    "‘": "`",
    "’": "'",
    "“": "``",
    "”": "''",
    "…": r"\ldots{}",
    "±": r"\ensuremath{\pm}",
    "×": r"\ensuremath{\times}",
    "·": r"\ensuremath{\cdot}",
    "°": r"\ensuremath{^\circ}",
    "−": r"\ensuremath{-}",
}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))
_MD_RE = re.compile(r"([\\`*_|\[\]<>])")
#: the start of a text that would make a Markdown list item, heading or thematic break of a line it begins
_MD_MARKER = re.compile(r"[-+#]+(?=\s|$)")
_MD_NUMBERED = re.compile(r"(\d{1,9})(?=[.)](?:\s|$))")


def _code_point(char: str) -> str:
    return f"<U+{ord(char):04X}>"


def _latex_char(char: str) -> str:
    """One character in plain LaTeX (ASCII only: the output compiles with or without inputenc)."""
    if char in _LATEX_SPECIAL:
        return _LATEX_SPECIAL[char]
    if " " <= char < "\x7f":
        return char
    if char in "\t\n\r\f\v":
        return " "
    if char in _LATEX_CHARS:
        return _LATEX_CHARS[char]
    if unprintable(char):
        return "".join(_LATEX_SPECIAL.get(c, c) for c in _code_point(char))
    decomposed = unicodedata.normalize("NFKD", char)
    if decomposed != char:
        pieces: list[str] = []
        for part in decomposed:
            if unicodedata.combining(part):
                if pieces and part in _LATEX_ACCENTS:
                    pieces[-1] = "\\" + _LATEX_ACCENTS[part] + "{" + pieces[-1] + "}"
            else:
                pieces.append(_latex_char(part))
        return "".join(pieces)
    return "".join(_LATEX_SPECIAL.get(c, c) for c in _code_point(char))


def _markdown_char(char: str, code_span: bool = False) -> str:
    """One character in Markdown: newlines and tabs as spaces, other control characters as
    ``<U+XXXX>`` (escaped outside a code span), others as they are."""
    if char in "\t\n\r\f\v":
        return " "
    if not unprintable(char):
        return char
    return _code_point(char) if code_span else "\\" + _code_point(char)[:-1] + "\\>"


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
    """Plain text as LaTeX text, in ASCII: the special characters (& % $ # _ { } ~ ^ \\) escaped, < > |
    [ ] * made safe, accented letters as accent commands (é: \\'{e}), Greek letters as math, other
    non-ASCII and control characters as ``<U+XXXX>`` (newlines and tabs as spaces)."""
    text = str(text)
    if text.isascii() and text.isprintable():
        return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group()], text)
    return "".join(_latex_char(c) for c in text)


def markdown_escape(text: str) -> str:
    """Backslash-escape characters that Markdown tables or emphasis would interpret, and a start that
    would make a list item or a heading; newlines and tabs become spaces, other control characters
    ``\\<U+XXXX\\>``. Other non-ASCII characters stay as they are (Markdown is UTF-8)."""
    text = _MD_RE.sub(r"\\\1", str(text))
    if _MD_MARKER.match(text):
        text = "\\" + text
    elif numbered := _MD_NUMBERED.match(text):
        text = numbered.group(1) + "\\" + text[numbered.end() :]
    return text if text.isprintable() else "".join(_markdown_char(c) for c in text)


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
        if self.latex:
            return r"\texttt{" + latex_escape(value) + "}"
        value = str(value).replace("`", "'")
        return "`" + (value if value.isprintable() else "".join(_markdown_char(c, code_span=True) for c in value)) + "`"

    @property
    def empty(self) -> str:
        """An empty cell."""
        return EMPTY_LATEX if self.latex else EMPTY_TEXT


def budget_text(budgets: Sequence[str], mk: Markup) -> str:
    """The budgets for captions, e.g. ", budget laptop" ("" when the runs have no budget)."""
    if not budgets:
        return ""
    return (", budget " if len(budgets) == 1 else ", budgets ") + ", ".join(mk.text(b) for b in budgets)
