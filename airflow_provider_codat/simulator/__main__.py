"""``python -m airflow_provider_codat.simulator``: serve the simulated Codat API in the foreground."""

from __future__ import annotations

import argparse
import base64

import uvicorn

from airflow_provider_codat.simulator.app import create_app
from airflow_provider_codat.simulator.control import SimulatorControl
from airflow_provider_codat.simulator.limits import CODAT_CONCURRENT_PER_COMPANY, CODAT_REQUESTS_PER_MINUTE
from airflow_provider_codat.simulator.portal import PORTAL_PATH
from airflow_provider_codat.simulator.server import simulator_connection_json
from airflow_provider_codat.simulator.world import DEFAULT_API_KEY, SimulatorState


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_codat.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--companies", type=int, default=5)
    parser.add_argument("--records", type=int, default=50, help="records per paged data type and scope")
    parser.add_argument("--sync-seconds", type=float, default=2.0, help="how long a queued sync takes")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--in-progress-status", type=int, choices=(400, 409), default=400)
    parser.add_argument(
        "--requests-per-minute",
        type=int,
        default=CODAT_REQUESTS_PER_MINUTE,
        help="per client IP; 0: no limit",
    )
    parser.add_argument("--daily-quota", type=int, help="default: 1000 x (1 + linked companies), like Codat")
    parser.add_argument(
        "--quota-period-seconds", type=float, help="reset the quota every N seconds (default: at 00:00 UTC)"
    )
    parser.add_argument(
        "--concurrent-per-company",
        type=int,
        default=CODAT_CONCURRENT_PER_COMPANY,
        help="requests in flight per company; 0: no limit",
    )
    parser.add_argument("--webhook-url", help="POST a signed read.completed here when syncs finish")
    parser.add_argument("--webhook-secret", help="whsec_ signing secret (default: a new one, printed)")
    parser.add_argument("--webhook-duplicates", type=int, default=0, help="extra deliveries of each message")
    parser.add_argument("--webhook-delay", type=float, default=0.0, help="seconds before the first delivery")
    parser.add_argument("--webhook-out-of-order", action="store_true", help="newest messages first")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, print how to reach the simulator and serve until Ctrl-C.

    :param argv: arguments (``sys.argv[1:]`` when ``None``).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        state = _state_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    shown_host = "localhost" if args.host in ("0.0.0.0", "127.0.0.1") else args.host
    base_url = f"http://{shown_host}:{args.port}"
    encoded = base64.b64encode(args.api_key.encode()).decode()
    webhooks = ""
    if args.webhook_url:
        sent = SimulatorControl(lambda: state, None).configure_webhooks(
            args.webhook_url,
            args.webhook_secret,
            args.webhook_duplicates,
            args.webhook_delay,
            args.webhook_out_of_order,
        )
        webhooks = f"  Webhooks: {sent['url']}  (signing secret {sent['secret']}, in the connection above)\n"
    connection = simulator_connection_json(
        base_url,
        args.api_key,
        state.webhook_sender and state.webhook_sender.secret,
        args.requests_per_minute,
    )
    print(
        f"Codat simulator on {base_url}\n"
        f"  API key:  {args.api_key}  (header: Authorization: Basic {encoded})\n"
        f"  Airflow:  AIRFLOW_CONN_CODAT_DEFAULT='{connection}'\n"
        f'  Try:      curl -H "Authorization: Basic $(printf %s {args.api_key} | base64)" '
        f"{base_url}/companies\n"
        f"  Control:  curl {base_url}/_simulator/companies\n"
        f"  Portal:   {base_url}{PORTAL_PATH}/companies/<company id>/summary (the company links open it)\n"
        f"  Limits:   {_limits_line(state)}\n"
        f"{webhooks}"
        "Ctrl-C to stop.",
        flush=True,
    )
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="warning", lifespan="off")


def _limits_line(state: SimulatorState) -> str:
    """The rate limits in force, in words."""
    settings = state.limits.settings
    quota = state.limits.quota(state.clock.timestamp())["limit"]
    period = settings.quota_period_seconds
    per_minute = settings.requests_per_minute
    concurrent = settings.concurrent_per_company
    return ", ".join(
        [
            f"{per_minute} requests a minute per IP" if per_minute else "no per-minute limit",
            f"{quota} requests " + (f"every {period:g} s" if period else "a day (reset at 00:00 UTC)"),
            f"{concurrent} at once per company" if concurrent else "no concurrency limit",
        ]
    )


def _state_from(args: argparse.Namespace) -> SimulatorState:
    """The state the command line asks for (a bad limit raises ``ValueError`` naming it)."""
    return SimulatorState(
        seed=args.seed,
        companies=args.companies,
        records=args.records,
        sync_seconds=args.sync_seconds,
        api_key=args.api_key,
        in_progress_status=args.in_progress_status,
        requests_per_minute=args.requests_per_minute,
        daily_quota=args.daily_quota,
        quota_period_seconds=args.quota_period_seconds,
        concurrent_per_company=args.concurrent_per_company,
    )


if __name__ == "__main__":
    main()
