"""Names, number formats and table styles shared by the tables, the README block and the book's
figures.

>>> display_name("ranksim+frobenius"), display_name("vanilla", "mse")
('RankSim + Ours', 'Vanilla (MSE)')
>>> format_mean_std(7.7712, 0.1234), format_mean_std(7.77, float("nan"))
('7.77 ± 0.12', '7.77')
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import pandas as pd

SHOT_NAMES = {"all": "All", "many": "Many", "median": "Med.", "few": "Few"}

#: display names of methods and components (figure labels); unknown names are shown as given
DISPLAY = {
    "vanilla": "Vanilla", "inv": "INV", "sqinv": "SQINV", "lds": "LDS", "fds": "FDS",
    "focal": "Focal-R", "rrt": "RRT", "bmc": "BMSE", "bmse": "BMSE", "gai": "GAI", "bni": "BNI",
    "ranksim": "RankSim", "oe": "OE", "conr": "ConR", "frobenius": "Ours",
    "frobenius_reg": "Ours (phase 1)", "der": "DER", "vae": "VAE", "vir": "VIR", "srl": "SRL",
    "supcr": "SupCR", "rnc": "RnC", "distloss": "Distloss", "smoter": "SMOTER", "smogn": "SMOGN",
}
LOSS_NAMES = {"mse": "MSE", "l1": "MAE", "huber": "Huber", "focal_l1": "focal L1",
              "focal_mse": "focal MSE"}

METRIC_NAMES = {"mae": "MAE", "gm": "GM", "mse": "MSE", "pearson": "Pearson"}
def dataset_name(dataset: str) -> str:
    """``"utkface-dir"`` -> ``"UTKFace-DIR"`` (its dataset file's ``TITLE``); an unknown id is
    returned as it is."""
    from ..datasets import title
    return title(dataset)


def signed(x: float, digits: int = 2) -> str:
    """``+0.40``; a nonzero value that would print as ``+0.00`` gets the digits it needs (up to 4).

    >>> signed(0.4), signed(0.003), signed(-0.00004), signed(0.0)
    ('+0.40', '+0.003', '-0.0000', '+0.00')
    """
    for d in range(digits, 5):
        text = f"{x:+.{d}f}"
        if x == 0 or text.strip("+-0.") != "":
            return text
    return f"{x:+.4f}"
#: decimals as the paper prints them
METRIC_DIGITS = {"mae": 2, "gm": 2, "mse": 3, "pearson": 1}


def display_name(method: str, loss: Optional[str] = None) -> str:
    """``"ranksim+frobenius"`` -> ``"RankSim + Ours"``; a non-default loss is appended."""
    parts = [DISPLAY.get(p, p) for p in method.split("+")]
    name = " + ".join(parts)
    if loss:
        name += f" ({LOSS_NAMES.get(loss, loss)})"
    return name


def format_mean_std(mean: float, std: float, digits: int = 2) -> str:
    """``"7.77 ± 0.12"``; just the mean when ``std`` is NaN (one seed); ``"–"`` for a NaN mean."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


# ----------------------------------------------------------------------------------- tables on a page
def plain_table(df: pd.DataFrame, digits: int = 3):
    """``df`` as a page shows a table: the index folded into columns and hidden, floats rounded."""
    named = [n for n in (df.index.names or []) if n is not None]
    if named:
        df = df.reset_index()
    return df.style.hide(axis="index").format(precision=digits, na_rep="–")


def caption(text: str) -> str:
    """A figure caption as a page shows it under a figure drawn in a cell (HTML, class ``caption``),
    so that it can be generated from the panels it describes."""
    import html
    return f'<p class="caption figure-caption"><span class="caption-text">{html.escape(text)}</span></p>'


def shot_table_display(table: pd.DataFrame, metric: str, digits: Optional[int] = None) -> pd.DataFrame:
    """Rows = runs, columns = shots, cells ``mean ± std`` (and the number of seeds)."""
    digits = METRIC_DIGITS.get(metric, 3) if digits is None else digits
    out = {}
    for _, r in table.iterrows():
        row = out.setdefault(r["label"], {"seeds": r["n_seeds"]})
        row[SHOT_NAMES[r["shot"]]] = format_mean_std(r[f"{metric}_mean"], r[f"{metric}_std"], digits)
    import pandas as pd
    df = pd.DataFrame.from_dict(out, orient="index")
    df.index.name = f"test {METRIC_NAMES.get(metric, metric)}"
    return df[[c for c in ["All", "Many", "Med.", "Few", "seeds"] if c in df.columns]]


def format_ordinality(score: dict) -> str:
    """One line: overall and per-shot Spearman, adjacent violations."""
    def f(v):
        return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"
    per = " · ".join(f"{SHOT_NAMES[s].lower().rstrip('.')} {f(score.get(f'spearman_{s}'))}"
                     for s in ("many", "median", "few") if f"spearman_{s}" in score)
    line = f"Spearman {f(score.get('spearman'))}"
    if per:
        line += f" ({per})"
    line += f"; violations {score.get('adjacent_violations')}/{score.get('adjacent_pairs')}"
    return line


def style_table(df: pd.DataFrame):
    """A pandas Styler of a :func:`table_frame` table: the method and source as plain columns (no
    index column), the ``dirlib`` rows shaded when the table mixes sources."""
    if any(n is not None for n in (df.index.names or [])):
        df = df.reset_index()
    src = next((c for c in df.columns if (c[0] if isinstance(c, tuple) else c) == "source"), None)
    mixed = src is not None and df[src].nunique() > 1

    def shade(row):
        on = mixed and row[src] == "dirlib"
        return ["background-color: #eaf2fb; font-weight: 600" if on else ""] * len(row)
    cells = [("padding", "0.25em 0.6em"), ("text-align", "right"), ("white-space", "nowrap")]
    return (df.style.apply(shade, axis=1).hide(axis="index")
            .set_table_attributes('class="dataframe table"')
            .set_table_styles([{"selector": "td", "props": cells},
                               {"selector": "th", "props": cells + [("font-weight", "600")]},
                               {"selector": "th.col_heading.level0", "props": [("text-align", "center")]}]))

