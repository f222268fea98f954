"""Plain-text tables for the command-line tools."""
from typing import Sequence


def markdown_table(head: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown table with padded columns (readable in a terminal too).

    Args:
        head (Sequence[str]): Column titles.
        rows (Sequence[Sequence]): Cells, converted with ``str``.

    Returns:
        str: The table, one line per row, header and rule first.
    """
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *cells)]

    def line(row):
        return '| ' + ' | '.join(c.ljust(w) for c, w in zip(row, widths)) + \
            ' |'

    rule = '|' + '|'.join('-' * (w + 2) for w in widths) + '|'
    return '\n'.join([line(head), rule] + [line(row) for row in cells])
