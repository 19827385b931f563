"""Markdown tables for the reports (report.md), one implementation."""

from __future__ import annotations


def markdown_table(rows: list[list[str]]) -> str:
    """A header row and data rows; a "|" inside a cell ("max |dlogit|") is escaped so it does not split it."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(rows[0]), "|" + "---|" * len(rows[0])] + [line(r) for r in rows[1:]])
