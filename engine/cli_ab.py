"""``followup ab SEQUENCE TOUCH``: an A/B test's table; ``--promote VARIANT`` decides by hand, ``--reset`` restarts it."""
from __future__ import annotations

import json

import click

from .errors import InputError

__all__ = ["ab_cmd"]


@click.command("ab")
@click.argument("sequence")
@click.argument("touch")
@click.option("--promote", "variant", help="Make VARIANT the winner now: new assignments go to it.")
@click.option("--reset", is_flag=True, help="Restart the test: no winner, figures counted from now.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def ab_cmd(state, sequence: str, touch: str, variant: str | None, reset: bool, as_json: bool) -> None:
    """Per variant: sent, delivered, clicks, conversions, revenue, rate, P(best); and the test's state."""
    from rich.table import Table

    from .abtests import promote, reset as reset_test, standing
    from .clock import now
    from .console import out
    from .text import grouped
    from .variants import AbSpec

    seq = state.config.sequence(sequence)
    found = next((t for t in seq.touches if t.name == touch), None)
    if found is None or not found.variants:
        with_variants = [t.name for t in seq.touches if t.variants]
        raise InputError(f"{sequence} has no touch {touch!r} with variants; touches with variants: "
                         f"{', '.join(with_variants) or 'none'}")
    names = [v.name for v in found.variants]
    if variant and reset:
        raise InputError("give --promote or --reset, not both")
    if variant and variant not in names:
        raise InputError(f"{variant!r} is not a variant of {sequence}/{touch}; its variants: {', '.join(names)}")
    spec = found.ab or AbSpec()
    with state.engine().begin() as conn:
        if variant:
            promote(conn, seq.name, touch, variant, now())
        elif reset:
            reset_test(conn, seq.name, touch, now())
        table = standing(conn, seq.name, touch, spec, names)
    if as_json:
        print(json.dumps(table, ensure_ascii=False, indent=2))
        return
    view = Table("variant", "sent", "delivered", "clicks", "conversions", "revenue", "rate", "P(best)",
                 title=f"{seq.name}/{touch}: {table['state']}"
                       + (f", winner {table['winner']} ({table['decided_by']})" if table["winner"] else "")
                       + f" — {spec.metric}, at least {spec.min_per_variant} per variant, confidence {spec.confidence}")
    for name, f in table["variants"].items():
        view.add_row(name, str(f["sent"]), str(f["delivered"]), str(f["clicks"]), str(f["conversions"]),
                     grouped(f["revenue"]), f"{f['rate']:.1%}", f"{f['p_best']:.3f}")
    out.print(view)
