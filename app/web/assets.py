"""Where the page's files are: inside the installed package, else at the top of a checkout.

A wheel carries static/ and templates/ as app/web/static and app/web/templates (see
pyproject.toml); an editable install or a plain checkout serves them from the repository.
"""

from importlib import resources
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]  # the repository, when running from one


def asset_dir(name: str) -> Path:
    """`static` or `templates` as a folder on disk; a clear error when neither place has it."""
    installed = Path(str(resources.files("app.web") / name))
    for place in (installed, CHECKOUT / name):
        if place.is_dir():
            return place
    raise FileNotFoundError(
        f"the page's {name}/ folder is missing: looked in {installed} and {CHECKOUT / name}"
    )
