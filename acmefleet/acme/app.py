"""The ACME ASGI application: dispatch, the signed-request pipeline, problem documents."""

from __future__ import annotations

import logging

from sqlalchemy import Connection

from acmefleet.acme import pki
from acmefleet.acme.context import AcmeContext
from acmefleet.acme.http import (
    BodyTooLarge,
    ClientDisconnected,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    json_response,
    read_request,
    send_response,
)
from acmefleet.acme.routes import (
    ACME_PATH,
    PKI_PATH,
    SignedRoute,
    match_signed,
    match_unsigned,
)
from acmefleet.acme.signed import Signed
from acmefleet.config import EndpointConfig
from acmefleet.errors import (
    AcmeError,
    ProblemType,
    StoreUnavailable,
    account_not_valid,
    malformed,
    unauthorized,
)
from acmefleet.jose.jws import RequestJws, parse_request_jws, verify_signature
from acmefleet.jose.keys import AccountKey
from acmefleet.models import Account
from acmefleet.store import accounts as account_store

log = logging.getLogger(__name__)
JOSE_JSON = "application/jose+json"
PROBLEM_JSON = "application/problem+json"


def problem_response(error: AcmeError) -> Response:
    response = json_response(error.as_problem(), error.http_status, PROBLEM_JSON)
    for name, value in error.headers.items():
        response.add_header(name, value)
    return response


def _store_unavailable(request: Request, unavailable: StoreUnavailable) -> AcmeError:
    """503 serverInternal with Retry-After: nothing was committed, the client may retry."""
    log.warning("%s %s: %s", request.method, request.path, unavailable)
    return AcmeError(
        ProblemType.SERVER_INTERNAL,
        "the server's database is unavailable for a moment; retry after the Retry-After delay",
        503,
        headers={"Retry-After": str(StoreUnavailable.RETRY_AFTER_SECONDS)},
    )


class AcmeApp:
    """RFC 8555 endpoints and the PKI files; the server composes it with the console."""

    def __init__(self, ctx: AcmeContext, *, pki_only: bool = False) -> None:
        self.ctx = ctx
        self.pki_only = pki_only  # the plain-HTTP listener serves only /pki/ and health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            request = await read_request(scope, receive)
        except BodyTooLarge:
            response = problem_response(malformed("the request body is too large", status=413))
            self._acme_headers(response, None)
            await send_response(send, response)
            return
        except ClientDisconnected:
            return
        response = await self.handle(request)
        await send_response(send, response, head=request.method == "HEAD")

    def start_validations(self) -> None:
        """Take part in the validation queue: work queued before this process started (left
        by a stopped server, or queued by another process) is claimed on its first look,
        each only within its deadline from when it was asked for."""
        self.ctx.queue.start()
        if self.ctx.relay is not None:
            self.ctx.relay.start()

    async def shutdown(self) -> None:
        """Finish or release this process's validations, then close the database."""
        await self.ctx.queue.stop()
        if self.ctx.relay is not None:
            await self.ctx.relay.stop()
        await self.ctx.tasks.drain()
        self.ctx.db.dispose()

    async def handle(self, request: Request) -> Response:
        endpoint: EndpointConfig | None = None
        if request.path in ("/health", "/healthz"):
            return self._health()
        pki_match = PKI_PATH.match(request.path)
        if pki_match:
            try:
                return pki.serve(self.ctx, pki_match, request)
            except AcmeError as error:
                return problem_response(error)
            except StoreUnavailable as unavailable:
                return problem_response(_store_unavailable(request, unavailable))
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.path)
                return problem_response(
                    AcmeError(
                        ProblemType.SERVER_INTERNAL, "internal error; it has been logged", 500
                    )
                )
        try:
            acme_match = None if self.pki_only else ACME_PATH.match(request.path)
            if not acme_match:
                raise AcmeError(ProblemType.MALFORMED, "no such resource", status=404)
            endpoint = self.ctx.endpoint(acme_match["endpoint"])
            if endpoint is None:
                raise AcmeError(ProblemType.MALFORMED, "no such ACME endpoint", status=404)
            response = await self._dispatch(request, endpoint, acme_match["rest"])
        except AcmeError as error:
            response = problem_response(error)
        except StoreUnavailable as unavailable:
            response = problem_response(_store_unavailable(request, unavailable))
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = problem_response(
                AcmeError(ProblemType.SERVER_INTERNAL, "internal error; it has been logged", 500)
            )
        self._acme_headers(response, endpoint)
        return response

    def _health(self) -> Response:
        """What a load balancer asks: 200 when this process can reach the database, else
        503 (the balancer sends the requests to a replica that can)."""
        try:
            self.ctx.db.ping()
        except StoreUnavailable as unavailable:
            log.warning("health check: %s", unavailable)
            response = json_response({"status": "unavailable", "database": "unavailable"}, 503)
            response.add_header("Retry-After", str(StoreUnavailable.RETRY_AFTER_SECONDS))
            return response
        return json_response({"status": "ok", "database": "ok"})

    def _acme_headers(self, response: Response, endpoint: EndpointConfig | None) -> None:
        response.add_header("Replay-Nonce", self.ctx.nonces.mint())
        response.add_header("Cache-Control", "no-store")
        if endpoint is not None:
            directory_url = self.ctx.urls(endpoint.name).directory
            response.add_header("Link", f'<{directory_url}>;rel="index"')

    async def _dispatch(self, request: Request, endpoint: EndpointConfig, rest: str) -> Response:
        unsigned = match_unsigned(rest)
        if unsigned is not None:
            route_unsigned, unsigned_params = unsigned
            self._require_method(request, route_unsigned.methods)
            return route_unsigned.handler(self.ctx, endpoint, request, unsigned_params)
        matched = match_signed(rest)
        if matched is None:
            raise AcmeError(ProblemType.MALFORMED, "no such resource", status=404)
        self._require_method(request, ("POST",))
        route, params = matched
        return await self._signed(request, endpoint, route, params)

    @staticmethod
    def _require_method(request: Request, allowed: tuple[str, ...]) -> None:
        if request.method not in allowed:
            error = malformed(f"method {request.method} is not allowed here", status=405)
            error.headers["Allow"] = ", ".join(allowed)
            raise error

    async def _signed(
        self,
        request: Request,
        endpoint: EndpointConfig,
        route: SignedRoute,
        params: dict[str, str],
    ) -> Response:
        """Checks in order: content type → JWS form → key → signature → nonce → handler.

        A route with a ``prepare`` step (network work the handler needs, such as finalize's
        CAA re-checks) runs it first, outside any write transaction: it reads, verifies the
        signature, then awaits; the handler gets what it found and re-verifies it."""
        if request.content_type != JOSE_JSON:
            raise malformed(f"Content-Type must be {JOSE_JSON}", status=415)
        urls = self.ctx.urls(endpoint.name)
        request_url = f"{self.ctx.config.base_url}{request.path}"
        if request.query:
            request_url += f"?{request.query}"
        jws = parse_request_jws(request.body, request_url)
        prepared: object = None
        if route.prepare is not None and route.prepare_when(self.ctx, endpoint):
            prepared = await self._prepare(request, endpoint, route, params, jws)
        signed: Signed | None = None
        try:
            with self.ctx.db.write() as conn:
                key, account = self._signer(conn, jws, endpoint, route)
                verify_signature(jws, key)
                signed = Signed(request, endpoint, urls, jws, key, account, params, prepared)
                assert jws.nonce is not None
                self.ctx.nonces.redeem(conn, jws.nonce)
                response = route.handler(self.ctx, conn, signed)
        except AcmeError as error:
            if signed is not None and error.type is not ProblemType.BAD_NONCE:
                self._burn_nonce(jws)
            raise
        return response

    async def _prepare(
        self,
        request: Request,
        endpoint: EndpointConfig,
        route: SignedRoute,
        params: dict[str, str],
        jws: RequestJws,
    ) -> object:
        """The route's preparation, for a request whose signature verifies (no network work
        for strangers); None when it has none to do or the request fails a check (the write
        phase then finds the same fault and answers it, nonce rules included)."""
        assert route.prepare is not None
        try:
            with self.ctx.db.read() as conn:
                key, account = self._signer(conn, jws, endpoint, route)
                verify_signature(jws, key)
                signed = Signed(
                    request, endpoint, self.ctx.urls(endpoint.name), jws, key, account, params
                )
                job = route.prepare(self.ctx, conn, signed)
        except AcmeError:
            return None
        return None if job is None else await job()

    def _burn_nonce(self, jws: RequestJws) -> None:
        """A verified request that failed still used its nonce up."""
        assert jws.nonce is not None
        try:
            with self.ctx.db.write() as conn:
                self.ctx.nonces.redeem(conn, jws.nonce)
        except AcmeError:
            pass

    def _signer(
        self, conn: Connection, jws: RequestJws, endpoint: EndpointConfig, route: SignedRoute
    ) -> tuple[AccountKey, Account | None]:
        """The key that must verify the JWS, and its account when signed with ``kid``."""
        if jws.jwk is not None:
            if route.key_source == "kid":
                raise malformed("this request must be signed with 'kid' (the account URL)")
            return self.ctx.keys.get(jws.jwk), None
        if route.key_source == "jwk":
            raise malformed("this request must be signed with 'jwk', not 'kid'")
        assert jws.kid is not None
        account_id = self.ctx.urls(endpoint.name).account_id_from_kid(jws.kid)
        if account_id is None:
            raise unauthorized("'kid' is not an account URL of this endpoint")
        account = account_store.get_account(conn, account_id)
        if account is None or account.endpoint != endpoint.name:
            raise AcmeError(ProblemType.ACCOUNT_DOES_NOT_EXIST, "no account exists at this 'kid'")
        if account.status != "valid":
            raise account_not_valid(account.status)
        return self.ctx.keys.get(account.jwk), account
