"""mkdocs hook (mkdocs.yml, ``hooks``): the figures of results/ that the pages show, copied into the site.

The pages link the committed figures where they lie, ``../results/<folder>/<name>.png``, so that
the Markdown also reads right on its own (a repository browser, an editor). mkdocs only knows the
files under docs/, so every such link that names an existing file of the repository is added to
the site's files (as ``repo/<path in the repository>``); a link to a file that does not exist is
left alone, and ``validation.links.not_found: warn`` with ``--strict`` fails the build on it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

#: a Markdown image or link whose target leaves docs/ for a figure of the repository
FIGURE_LINK = re.compile(r"\]\((\.\./[^)\s#]+\.(?:png|svg|jpg|jpeg|gif))\)")


def on_files(files: Files, config) -> Files:
    docs = Path(config["docs_dir"]).resolve()
    repo = docs.parent
    for page in list(files.documentation_pages()):
        text = Path(page.abs_src_path).read_text(encoding="utf-8")
        page_dir = posixpath.dirname(page.src_uri)
        for target in FIGURE_LINK.findall(text):
            uri = posixpath.normpath(posixpath.join(page_dir, target))  # what mkdocs resolves the link to
            source = (docs / uri).resolve()
            if files.get_file_from_path(uri) is not None or not source.is_file() or repo not in source.parents:
                continue
            files.append(
                File(
                    uri,
                    src_dir=str(docs),
                    dest_dir=config["site_dir"],
                    use_directory_urls=config["use_directory_urls"],
                    dest_uri=f"repo/{source.relative_to(repo).as_posix()}",
                    inclusion=InclusionLevel.INCLUDED,
                )
            )
    return files
