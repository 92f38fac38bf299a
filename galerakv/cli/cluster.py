"""``galerakv cluster ...``: deploy, check and repair the Galera cluster."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import click

from galerakv import tls
from galerakv.cli.common import config_option, emit_json, fail, handle_errors, json_option
from galerakv.cluster import balancer, certs, starter
from galerakv.cluster import doctor as _doctor
from galerakv.cluster import install as _install
from galerakv.cluster.operations import cleanup as _cleanup
from galerakv.cluster.operations import lifecycle
from galerakv.cluster.operations import membership as _membership
from galerakv.cluster.operations import overview as _overview
from galerakv.cluster.operations import rolling as _rolling
from galerakv.cluster.operations import sql as _sql
from galerakv.cluster.operations import verify as _verify
from galerakv.cluster.render import balancer as _brender
from galerakv.cluster.render import node as render
from galerakv.cluster.transport import make_transport
from galerakv.config import DEFAULT_FILE, ENV_VAR, Settings
from galerakv.galera.status import ClusterVerdict, NodeStatus
from galerakv.secrets import Account, write_private


@click.group()
def cluster() -> None:
    """Deploy, check and repair the MariaDB Galera cluster described in galerakv.toml."""


def _echo(line: str) -> None:
    click.echo(line)


@cluster.command()
@click.option("--local", "count", type=int, required=True, help="Number of loopback nodes.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help=f"File to write (default: ${ENV_VAR}, else ./{DEFAULT_FILE}).")
@click.option("--first-address", default=starter.FIRST_ADDRESS, show_default=True,
              help="Loopback address of the first node; the others follow.")
@click.option("--balancer", "balancer_kind", type=click.Choice(["haproxy", "maxscale", "none"]),
              default="haproxy", show_default=True, help="The load balancer in front of the nodes.")
@click.option("--balancer-address", default=None,
              help="Where the balancer listens (default: the address just below the first node's).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@handle_errors
def init(count: int, config_path: str | None, first_address: str, balancer_kind: str,
         balancer_address: str | None, force: bool) -> None:
    """Write a starter galerakv.toml for N nodes on 127.0.0.11, .12, ..."""
    target = Path(config_path or os.environ.get(ENV_VAR) or DEFAULT_FILE)
    if target.exists() and not force:
        fail(f"{target} already exists; pass --force to overwrite it")
    if not target.parent.is_dir():
        fail(f"{target.parent} is not a directory")
    state_dir, blocked = starter.reachable_state_dir(target)
    text = starter.starter_toml(count, first_address, state_dir=state_dir, balancer_kind=balancer_kind,
                                balancer=balancer_address)
    target.write_text(text)
    click.echo(f"wrote {target} with {count} node{'s' if count != 1 else ''}")
    if blocked is not None:
        click.echo(f"state_dir is {state_dir}: the mysql user cannot enter {blocked}, so the nodes' "
                   "data cannot live next to the file (edit cluster.state_dir to choose another place)")
    _, warnings = lifecycle.node_count_problems(count, allow_small=True)
    for warning in warnings:
        click.echo(f"warning: {warning}")
    click.echo(f"next: galerakv cluster up --config {target}")


@cluster.command("render")
@config_option
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write <out>/<node>/cluster.cnf (and my.cnf for local nodes) instead of printing.")
@click.option("--provider", default=None,
              help="Path of libgalera_smm.so to write (default: the one found on this machine).")
@handle_errors
def render_cmd(settings: Settings, out: str | None, provider: str | None) -> None:
    """Render each node's MariaDB/Galera configuration, and the balancer's.

    haproxy.cfg and maxscale.cnf are written whatever balancer.kind says, so
    either can be read or used by hand; maxscale.cnf printed to the terminal
    shows no password (written with --out it holds them, mode 0600).
    """
    _require_nodes(settings)
    ctx = render.detect_context(require_provider=provider is None)
    if provider is not None:
        ctx = dataclasses.replace(ctx, provider=provider)
    rendered = render.render_all(settings, ctx)
    haproxy_cfg = _brender.render_haproxy_cfg(settings)
    if out is None:
        for node, files in rendered.items():
            for name, text in files.items():
                click.echo(f"# ==> {node}/{name} <==")
                click.echo(text)
        click.echo("# ==> haproxy.cfg <==")
        click.echo(haproxy_cfg)
        click.echo("# ==> maxscale.cnf <==")
        click.echo(_brender.render_maxscale_cnf(settings, _masked_maxscale_accounts()))
        return
    for path in render.write_rendered(rendered, Path(out)):
        click.echo(f"wrote {path}")
    (Path(out) / "haproxy.cfg").write_text(haproxy_cfg)
    click.echo(f"wrote {Path(out) / 'haproxy.cfg'}")
    accounts = (balancer.ensure_maxscale_accounts(settings) if settings.balancer.kind == "maxscale"
                else _masked_maxscale_accounts())
    write_private(Path(out) / "maxscale.cnf", _brender.render_maxscale_cnf(settings, accounts))
    click.echo(f"wrote {Path(out) / 'maxscale.cnf'} (mode 0600)")


def _masked_maxscale_accounts() -> _brender.MaxScaleAccounts:
    hidden = "<generated by `galerakv cluster up`>"
    return _brender.MaxScaleAccounts(Account(_brender.MAXSCALE_MONITOR_USER, hidden),
                                     Account(_brender.MAXSCALE_SERVICE_USER, hidden))


@cluster.command("certs")
@config_option
@click.option("--renew", is_flag=True,
              help="Issue new certificates (same CA) for every node, the HTTPS API and the balancer; "
                   "`galerakv cluster restart --rolling` then loads them with no failed request.")
@click.option("--days", type=click.IntRange(1, 3650), default=tls.LEAF_DAYS, show_default=True,
              help="Validity of the certificates issued now.")
@click.option("--ca-cert", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Bring your own CA: its certificate (PEM); with --ca-key. Every leaf is issued again.")
@click.option("--ca-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Your CA's private key (PEM, no passphrase).")
@click.option("--http-name", multiple=True,
              help="Another name or address for the HTTPS API's certificate (repeat the option).")
@json_option
@handle_errors
def certs_cmd(settings: Settings, renew: bool, days: int, ca_cert: Path | None, ca_key: Path | None,
              http_name: tuple[str, ...], as_json: bool) -> None:
    """Make, show and renew the cluster's TLS certificates (state_dir/tls).

    A private CA signs one certificate per node (its address and name), one for
    the HTTPS API (server.tls_cert) and one for MaxScale's listeners. Missing
    ones are made; existing ones are checked and shown with their expiry.
    """
    _require_nodes(settings)
    if not settings.cluster.tls:
        fail("cluster.tls is false in the configuration: the cluster runs without TLS; set "
             "`tls = true` in [cluster] (then `galerakv cluster down` and `up`)")
    if (ca_cert is None) != (ca_key is None):
        fail("--ca-cert and --ca-key go together: your CA's certificate and its private key")
    say = (lambda _line: None) if as_json else _echo
    if ca_cert is not None and ca_key is not None:
        found = certs.import_ca(settings, ca_cert, ca_key)
        say(f"tls: using your CA {found.subject} (until {found.not_after:%Y-%m-%d})")
        renew = True
    issued = certs.ensure(settings, say, renew=renew, days=days, extra_http=http_name)
    rows = certs.inventory(settings)
    if as_json:
        emit_json({"issued": issued, "certificates": [
            {"name": name, "path": str(path), "problem": problem or None,
             **({"subject": info.subject, "not_after": info.not_after.isoformat(),
                 "days_left": round(info.days_left(), 1), "names": list(info.names),
                 "fingerprint_sha256": info.fingerprint} if info else {})}
            for name, path, info, problem in rows]})
        return
    table = [("certificate", "expires (UTC)", "days left", "names")]
    for name, path, info, problem in rows:
        if info is None:
            table.append((name, problem, "", str(path)))
        else:
            table.append((name, f"{info.not_after:%Y-%m-%d %H:%M}", f"{info.days_left():.0f}",
                          ", ".join(info.names) or info.subject))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for row in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if issued and any(n.name in issued for n in settings.cluster.nodes):
        click.echo("next: `galerakv cluster restart --rolling` loads the new certificates, one node at a time "
                   "(the cluster stays up); restart `galerakv serve` for a new http certificate")


@cluster.command()
@config_option
@click.option("--allow-small", is_flag=True, help="Allow fewer than 3 nodes.")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=lifecycle.JOIN_TIMEOUT,
              show_default=True, help="Seconds to wait for each node to be Synced.")
@click.option("--no-install", is_flag=True, help="Do not install missing packages.")
@handle_errors
def up(settings: Settings, allow_small: bool, timeout: float, no_install: bool) -> None:
    """Start the cluster: bootstrap one node, join the others, create accounts."""
    transport = make_transport(settings)
    result = lifecycle.up(settings, transport, _echo, allow_small=allow_small,
                          bootstrap_timeout=min(timeout, lifecycle.BOOTSTRAP_TIMEOUT),
                          join_timeout=timeout, install=not no_install)
    if result.changed:
        _conclude(settings, result.report.verdict, result.seconds,
                  f"started {', '.join(result.started) or 'nothing'}")


@cluster.command()
@config_option
@click.option("--force", "force", metavar="NODE", default=None,
              help="Bootstrap NODE whatever the evidence says (its history wins).")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=lifecycle.JOIN_TIMEOUT,
              show_default=True, help="Seconds to wait for each node to be Synced.")
@handle_errors
def recover(settings: Settings, force: str | None, timeout: float) -> None:
    """After a full outage: bootstrap the most advanced node, then join the others.

    Reads grastate.dat on every node and runs `mariadbd --wsrep-recover` where
    the seqno is -1; prints the evidence and the decision. Refuses when the
    evidence contradicts itself, unless --force names the node to keep.
    """
    _require_nodes(settings)
    result = lifecycle.recover(settings, make_transport(settings), _echo, force=force,
                               join_timeout=timeout)
    if result is None:
        return
    _conclude(settings, result.report.verdict, result.seconds,
              f"bootstrapped {result.bootstrapped}, started {', '.join(result.started)}")


def _conclude(settings: Settings, v: ClusterVerdict, seconds: float, what: str) -> None:
    """The closing line of a verb that started nodes: the verdict, its reasons; exit 1 unless healthy."""
    click.echo(f"cluster {settings.cluster.name}: {v.verdict} after {seconds:.1f} s ({what})")
    for reason in v.reasons:
        click.echo(f"  - {reason}")
    if not v.healthy:
        sys.exit(1)


@cluster.command()
@config_option
@click.option("--timeout", type=click.FloatRange(1, 3600), default=lifecycle.STOP_TIMEOUT,
              show_default=True, help="Seconds to wait for each node to stop.")
@handle_errors
def down(settings: Settings, timeout: float) -> None:
    """Stop every node cleanly, in reverse order."""
    _require_nodes(settings)
    stopped = lifecycle.down(settings, make_transport(settings), _echo, timeout)
    click.echo(f"stopped {len(stopped)} node{'s' if len(stopped) != 1 else ''}")


@cluster.command()
@config_option
@json_option
@click.option("--watch", is_flag=True, help="Redraw the nodes, the balancer and the doctor's findings every "
              "second, until q or Ctrl-C.")
@handle_errors
def status(settings: Settings, as_json: bool, watch: bool) -> None:
    """Each node's Galera state and the cluster verdict; exit 0 only when healthy."""
    _require_nodes(settings)
    if watch:
        if as_json:
            fail("--watch redraws a terminal view; leave out --json (or poll `status --json`)")
        from galerakv.cli.live import watch as live_watch

        live_watch(settings)
        return
    view = _overview.overview(settings, make_transport(settings))
    tls_line = certs.summary(settings)
    if as_json:
        emit_json({**view.to_dict(), "tls": tls_line})
    else:
        _print_status(settings, view.nodes, view.maintenance)
        click.echo(f"cluster {settings.cluster.name}: {view.verdict.verdict}")
        for reason in view.verdict.reasons:
            click.echo(f"  - {reason}")
        if view.balancer is not None:
            _print_balancer(view.balancer)
        click.echo(f"tls: {tls_line['text']}")
        if view.hint:
            click.echo(view.hint)
    if not view.verdict.healthy:
        sys.exit(1)


def _print_balancer(lb: balancer.BalancerStatus) -> None:
    state = f"running (PID {lb.pid})" if lb.running else "not running"
    click.echo(f"balancer {lb.kind} on {lb.address} (writes :{lb.rw_port}, reads :{lb.ro_port}): {state}")
    if lb.servers:
        rows = [("listener", "server", "role", "state", "last check", "sessions")]
        for s in lb.servers:
            role = "backup" if s.backup else ("active" if s.listener == "rw" else "reader")
            rows.append((s.listener, s.server, role,
                         s.status + (" (maintenance)" if s.server in lb.drained else ""),
                         f"{s.check} {s.check_detail}".strip(), str(s.sessions)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            click.echo("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for problem in lb.problems:
        click.echo(f"  - {problem}")


def _print_status(settings: Settings, nodes: tuple[NodeStatus, ...],
                  drained: dict[str, balancer.Maintenance]) -> None:
    header = ("node", "address", "state", "size", "component", "ready", "connected",
              "committed", "fc_paused", "recv_q", "cluster uuid")
    rows: list[tuple[str, ...]] = [header]
    for cfg, st in zip(settings.cluster.nodes, nodes, strict=True):
        maint = " (maintenance)" if st.name in drained else ""
        if not st.reachable:
            rows.append((st.name, cfg.address, "unreachable" + maint, "-", "-", "-", "-", "-", "-", "-",
                         st.error[:60]))
            continue
        rows.append((st.name, cfg.address, st.state + maint, str(st.cluster_size), st.cluster_status,
                     "ON" if st.ready else "OFF", "ON" if st.connected else "OFF",
                     str(st.last_committed), f"{st.flow_control_paused:.3f}", str(st.recv_queue),
                     st.cluster_state_uuid))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for m in drained.values():
        click.echo(f"{m.node}: in maintenance since {m.since_text} ({m.note or m.path}): its health "
                   f"check answers 503, so the balancer sends it nothing; end it with `{m.end}`")


@cluster.command()
@config_option
@json_option
@click.option("--offline", is_flag=True,
              help="Only galerakv.toml, rendered configs and files: no node is contacted.")
@handle_errors
def doctor(settings: Settings, as_json: bool, offline: bool) -> None:
    """Find common Galera mistakes, with evidence and fix; exit 1 on anything critical."""
    _require_nodes(settings)
    report = _doctor.run(settings, make_transport(settings), offline=offline)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(_doctor.format_text(report))
    if not report.ok:
        sys.exit(1)


@cluster.command()
@config_option
@json_option
@handle_errors
def verify(settings: Settings, as_json: bool) -> None:
    """Write a marker through each node, read it on every other; exit 1 on any failure."""
    _require_nodes(settings)
    result = _verify.verify(settings, make_transport(settings),
                            (lambda _line: None) if as_json else _echo)
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo("verify: " + ("ok" if result.ok else
                                 f"{len(result.failures)} check(s) failed"))
    if not result.ok:
        sys.exit(1)


@cluster.command()
@config_option
@click.option("--node", "node_name", default=None, help="Node to connect to (default: the root node).")
@click.option("--via", type=click.Choice(["rw", "ro"]), default=None,
              help="Go through the balancer's read-write or read-only port instead.")
@click.option("-e", "--execute", "statement", default=None, help="Run one statement and exit.")
@handle_errors
def sql(settings: Settings, node_name: str | None, via: str | None, statement: str | None) -> None:
    """The mariadb client as the admin user; no password typed or shown."""
    if node_name is not None and via is not None:
        fail("give either --node or --via, not both")
    if via is not None:
        sys.exit(_sql.run(_sql.balancer_argv(settings, "rw" if via == "rw" else "ro", statement)))
    sys.exit(_sql.on_node(settings, make_transport(settings), node_name, statement))


@cluster.command("install")
@config_option
@click.option("--all", "everything", is_flag=True,
              help="Install everything galerakv can run here: both SST methods (mariadb-backup, socat) and haproxy.")
@handle_errors
def install_cmd(settings: Settings, everything: bool) -> None:
    """Install MariaDB, Galera and the state-transfer tools (Debian/Ubuntu, as root).

    With nodes on ssh hosts, each host gets what it needs over ssh (apt-get on the
    host), and the balancer's host HAProxy.
    """
    if settings.cluster.transport == "ssh":
        if not lifecycle.install_missing(settings, make_transport(settings), _echo):
            _echo("every node's host has MariaDB, Galera and the state-transfer tools")
        return
    packages = _install.required_packages(None if everything else settings.cluster.sst_method)
    packages += balancer.required_packages(settings)
    if everything and "haproxy" not in packages:
        packages.append("haproxy")
    done = _install.install(packages, _echo)
    if done:
        click.echo("installed: " + " ".join(done))


@cluster.command()
@config_option
@click.option("--node", "node_name", required=True, help="The node to drain or bring back.")
@click.argument("switch", type=click.Choice(["on", "off"]))
@handle_errors
def maintenance(settings: Settings, node_name: str, switch: str) -> None:
    """Drain a node from the balancer (on) or bring it back (off).

    While on, the node's health check answers 503, so HAProxy stops sending it
    new connections within two check intervals; the node itself keeps running.
    """
    try:
        node = settings.cluster.node(node_name)
    except KeyError as exc:
        fail(str(exc.args[0]))
        return
    if not balancer.managed(settings) or settings.balancer.kind != "haproxy":
        fail("maintenance drains a node from the HAProxy galerakv runs (balancer.kind = \"haproxy\"); "
             "with another balancer, drain the node in that balancer")
        return
    if switch == "on":
        where = balancer.set_maintenance(settings, node, "drained by `galerakv cluster maintenance`\n")
        click.echo(f"{node.name}: maintenance on ({where}); its health check answers 503; "
                   f"`galerakv cluster maintenance --node {node.name} off` ends it")
    else:
        balancer.set_maintenance(settings, node, None)
        click.echo(f"{node.name}: maintenance off; back in rotation once its check passes")


@cluster.command()
@config_option
@click.option("--rolling", is_flag=True, help="One node at a time (the only kind there is).")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=lifecycle.JOIN_TIMEOUT,
              show_default=True, help="Seconds to wait for each node to be Synced again.")
@handle_errors
def restart(settings: Settings, rolling: bool, timeout: float) -> None:
    """Restart every node in turn, clients moved away first, each Synced before the next.

    Also the way to apply configuration changes: each node starts with the
    configuration rendered from galerakv.toml at that moment.
    """
    _require_nodes(settings)
    if not rolling:
        fail("only --rolling is supported; for a full restart use `galerakv cluster down` "
             "then `galerakv cluster up`")
    began = time.monotonic()
    steps = _rolling.rolling_restart(settings, make_transport(settings), _echo,
                                     join_timeout=timeout)
    click.echo(f"rolling restart done in {time.monotonic() - began:.1f} s: "
               + ", ".join(f"{s.node} down {s.down:.1f} s" for s in steps))


@cluster.command("add-node")
@config_option
@click.argument("name")
@click.argument("address")
@click.option("--port", type=click.IntRange(1, 65535), default=3306, show_default=True)
@click.option("--timeout", type=click.FloatRange(1, 3600), default=lifecycle.JOIN_TIMEOUT,
              show_default=True, help="Seconds to wait for the state transfer.")
@handle_errors
def add_node(settings: Settings, name: str, address: str, port: int, timeout: float) -> None:
    """Add a node: galerakv.toml, every node's gcomm:// list, a state transfer, the balancer."""
    _require_nodes(settings)
    result = _membership.add_node(settings, make_transport(settings), _echo, name, address, port,
                                  join_timeout=timeout)
    click.echo(f"{name} joined in {result.seconds:.1f} s; the cluster has "
               f"{len(result.settings.cluster.nodes)} nodes (restart `galerakv serve` with "
               'route = "nodes" for it to use the new node)')


@cluster.command("remove-node")
@config_option
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove it even if fewer than 3 nodes remain.")
@handle_errors
def remove_node(settings: Settings, name: str, force: bool) -> None:
    """Make a node leave cleanly, then drop it from galerakv.toml, the configs, the balancer."""
    _require_nodes(settings)
    result = _membership.remove_node(settings, make_transport(settings), _echo, name, force=force)
    click.echo(f"{name} removed in {result.seconds:.1f} s; the cluster has "
               f"{len(result.settings.cluster.nodes)} nodes")
    leftover = settings.state_dir / name
    if settings.cluster.transport == "local" and leftover.exists():
        click.echo(f"its files stay in {leftover} (datadir, logs); delete them when you no longer need them: "
                   f"rm -rf {leftover}")


@cluster.command()
@config_option
@click.option("--yes", is_flag=True, help="Do not ask; for scripts.")
@handle_errors
def destroy(settings: Settings, yes: bool) -> None:
    """Stop every node and the balancer, then delete state_dir: all data and credentials.

    galerakv.toml, backups outside state_dir and installed packages stay.
    """
    _require_nodes(settings)
    problem = _cleanup.state_dir_problem(settings)
    if problem is not None:
        fail(problem)
    if not yes:
        if not sys.stdin.isatty():
            fail("destroy deletes every node's data; pass --yes to confirm (no terminal to ask on)", 2)
        click.echo(f"This stops cluster {settings.cluster.name} and deletes {settings.state_dir.absolute()}: "
                   "every node's data, logs and the generated credentials.")
        answer = click.prompt("Type the cluster name to confirm", default="", show_default=False)
        if answer != settings.cluster.name:
            fail("not confirmed; nothing was stopped or deleted")
    deleted = _cleanup.destroy(settings, make_transport(settings), _echo)
    click.echo(f"cluster {settings.cluster.name} destroyed" + ("" if deleted else " (state_dir did not exist)"))


def _require_nodes(settings: Settings) -> None:
    if not settings.cluster.nodes:
        where = settings.source or "no configuration file found"
        fail(f"{where}: no [[cluster.nodes]]; run `galerakv cluster init --local 3` first")
