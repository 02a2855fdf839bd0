"""What every generated client shares: the channel, defaults and error translation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any, Self, TypeVar

import grpc
from google.protobuf import descriptor
from google.protobuf.message import Message

from manufacturing_sdk.channels import (
    DEFAULT_TIMEOUT_S,
    Tls,
    channel_options,
    credentials_metadata,
)
from manufacturing_sdk.errors import from_rpc_error

Response = TypeVar("Response", bound=Message)
Requests = Message | Iterable[Message]


class _Calls:
    """Builds the calls of one service on a sync or asyncio channel (alike in shape)."""

    def __init__(
        self,
        channel: Any,
        service: descriptor.ServiceDescriptor,
        *,
        token: Any,
        api_key: str | None,
        timeout_s: float | None,
    ) -> None:
        self.channel = channel
        self._service = service
        self._metadata = credentials_metadata(token, api_key)
        self._timeout_s = timeout_s

    def _options(self, timeout_s: float | None, streaming_response: bool) -> dict[str, Any]:
        # Unary calls get the default deadline; response streams (watches) run until
        # the caller stops them unless it gives a timeout.
        if timeout_s is None and not streaming_response:
            timeout_s = self._timeout_s
        return {"timeout": timeout_s, "metadata": self._metadata()}

    def unary(
        self, method: str, request: Message, response: type[Message], timeout_s: float | None
    ) -> Any:
        call = self.channel.unary_unary(
            f"/{self._service.full_name}/{method}",
            type(request).SerializeToString,
            response.FromString,
        )
        return call(request, **self._options(timeout_s, streaming_response=False))

    def upload(
        self,
        method: str,
        requests: Iterable[Message],
        request: type[Message],
        response: type[Message],
        timeout_s: float | None,
    ) -> Any:
        call = self.channel.stream_unary(
            f"/{self._service.full_name}/{method}", request.SerializeToString, response.FromString
        )
        return call(iter(requests), **self._options(timeout_s, streaming_response=False))

    def stream(
        self,
        method: str,
        requests: Requests,
        request: type[Message],
        response: type[Message],
        timeout_s: float | None,
    ) -> Any:
        path = f"/{self._service.full_name}/{method}"
        codec = (request.SerializeToString, response.FromString)
        options = self._options(timeout_s, streaming_response=True)
        if isinstance(requests, Message):
            return self.channel.unary_stream(path, *codec)(requests, **options)
        return self.channel.stream_stream(path, *codec)(iter(requests), **options)


def _channel(aio: bool, target: str, tls: Tls | None, options: list[tuple[str, Any]]) -> Any:
    module: Any = grpc.aio if aio else grpc
    if tls is not None:
        return module.secure_channel(target, tls.credentials(), options=options)
    return module.insecure_channel(target, options=options)


class SyncClient:
    """Blocking client; use as a context manager or call ``close()``."""

    SERVICE: descriptor.ServiceDescriptor

    def __init__(
        self,
        target: str,
        *,
        tls: Tls | None = None,
        token: str | Any = None,
        api_key: str | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        channel = _channel(False, target, tls, [*channel_options([self.SERVICE]), *options])
        self._calls = _Calls(
            channel, self.SERVICE, token=token, api_key=api_key, timeout_s=timeout_s
        )

    def close(self) -> None:
        self._calls.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unary(
        self, method: str, request: Message, response: type[Response], timeout_s: float | None
    ) -> Response:
        try:
            result: Response = self._calls.unary(method, request, response, timeout_s)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return result

    def _upload(
        self,
        method: str,
        requests: Iterable[Message],
        request: type[Message],
        response: type[Response],
        timeout_s: float | None,
    ) -> Response:
        try:
            result: Response = self._calls.upload(method, requests, request, response, timeout_s)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return result

    def _stream(
        self,
        method: str,
        requests: Requests,
        request: type[Message],
        response: type[Response],
        timeout_s: float | None,
    ) -> Iterator[Response]:
        replies = self._calls.stream(method, requests, request, response, timeout_s)
        try:
            yield from replies
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        finally:
            replies.cancel()  # the caller stopped early: end the call on the server too


class AsyncClient:
    """asyncio client; use ``async with`` or await ``close()``."""

    SERVICE: descriptor.ServiceDescriptor

    def __init__(
        self,
        target: str,
        *,
        tls: Tls | None = None,
        token: str | Any = None,
        api_key: str | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        channel = _channel(True, target, tls, [*channel_options([self.SERVICE]), *options])
        self._calls = _Calls(
            channel, self.SERVICE, token=token, api_key=api_key, timeout_s=timeout_s
        )

    async def close(self) -> None:
        await self._calls.channel.close(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _unary(
        self, method: str, request: Message, response: type[Response], timeout_s: float | None
    ) -> Response:
        try:
            result: Response = await self._calls.unary(method, request, response, timeout_s)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return result

    async def _upload(
        self,
        method: str,
        requests: Iterable[Message],
        request: type[Message],
        response: type[Response],
        timeout_s: float | None,
    ) -> Response:
        try:
            result: Response = await self._calls.upload(
                method, requests, request, response, timeout_s
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return result

    async def _stream(
        self,
        method: str,
        requests: Requests,
        request: type[Message],
        response: type[Response],
        timeout_s: float | None,
    ) -> AsyncIterator[Response]:
        replies = self._calls.stream(method, requests, request, response, timeout_s)
        try:
            async for reply in replies:
                yield reply
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        finally:
            replies.cancel()
