"""Writing a config dict as a readable Python config file (key order kept, 100 columns)."""

from __future__ import annotations

import keyword
from typing import Any

_WIDTH = 100
_INDENT = '    '


def format_config(cfg: dict, header: str = '') -> str:
    """Python source that assigns every top-level key of ``cfg``; ``header`` becomes comments."""
    lines = [f'# {line}'.rstrip() for line in header.splitlines()]
    if lines:
        lines.append('')
    previous_block = False
    for key, value in cfg.items():
        text = f'{key} = {_format(value, "", len(key) + 3)}'
        block = '\n' in text
        if (block or previous_block) and lines and lines[-1]:
            lines.append('')  # a blank line around every multi-line value
        lines.append(text)
        previous_block = block
    return '\n'.join(lines) + '\n'


def _is_name(key: Any) -> bool:
    return isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key)


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        if all(_is_name(k) for k in value):
            return 'dict(' + ', '.join(f'{k}={_inline(v)}' for k, v in value.items()) + ')'
        return '{' + ', '.join(f'{_inline(k)}: {_inline(v)}' for k, v in value.items()) + '}'
    if isinstance(value, list):
        return '[' + ', '.join(_inline(v) for v in value) + ']'
    if isinstance(value, tuple):
        items = [_inline(v) for v in value]
        return '(' + ', '.join(items) + (',)' if len(items) == 1 else ')')
    return repr(value)


def _is_atom(value: Any) -> bool:
    return not isinstance(value, dict) and len(_inline(value)) <= 24


def _fill(items: list[str], indent: str) -> str:
    lines: list[str] = []
    line = ''
    for item in items:
        piece = f'{item},'
        if line and len(indent) + len(line) + 1 + len(piece) > _WIDTH:
            lines.append(line)
            line = piece
        else:
            line = f'{line} {piece}' if line else piece
    lines.append(line)
    return ''.join(f'{indent}{text}\n' for text in lines)


def _format(value: Any, indent: str, used: int) -> str:
    """``value`` inline when it fits after ``used`` columns and a comma, else item by item."""
    text = _inline(value)
    if len(indent) + used + len(text) + 1 <= _WIDTH or not isinstance(value, (dict, list, tuple)):
        return text
    inner = indent + _INDENT
    if isinstance(value, dict):
        if all(_is_name(k) for k in value):
            items = [f'{k}={_format(v, inner, len(k) + 2)}' for k, v in value.items()]
            open_, close = 'dict(', ')'
        else:
            items = []
            for k, v in value.items():
                head = f'{_inline(k)}: '
                items.append(head + _format(v, inner, len(head) + 1))
            open_, close = '{', '}'
    else:
        open_, close = ('[', ']') if isinstance(value, list) else ('(', ')')
        if all(_is_atom(v) for v in value):  # numbers, names, scales: fill the lines
            return f'{open_}\n{_fill([_inline(v) for v in value], inner)}{indent}{close}'
        items = [_format(v, inner, 1) for v in value]
    body = ''.join(f'{inner}{item},\n' for item in items)
    return f'{open_}\n{body}{indent}{close}'
