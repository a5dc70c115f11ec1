"""SPDY/3.1 framing and the server session, against a scripted client."""

from __future__ import annotations

import asyncio
import struct
import zlib

from kybern.machinery import spdy

# kubectl's first SYN_STREAM starts its zlib stream with this dictionary id (the adler32
# of the SPDY/3 dictionary that Go's framer uses): a wrong dictionary cannot decode it
GO_DICTIONARY_ID = 0xE3C6A7C2


def test_dictionary_is_the_spdy3_one() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == GO_DICTIONARY_ID
    assert spdy.DICTIONARY.endswith(b"enq=0.")


def test_header_blocks_round_trip_across_frames() -> None:
    tx, rx = spdy.HeaderCodec(), spdy.HeaderCodec()
    for headers in ({"streamtype": "error"}, {"streamtype": "data", "port": "8080", "requestid": "0"}, {}):
        assert rx.decode(tx.encode(headers)) == headers  # one zlib stream per direction


class Pipe:
    """An in-memory ByteConn: what the test writes, the session reads, and back."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.out = bytearray()
        self.closed = False

    async def read(self) -> bytes:
        return await self.inbox.get()

    def write(self, data: bytes) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True


def frames(buf: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 8 <= len(buf):
        n = int.from_bytes(buf[pos + 5:pos + 8], "big")
        out.append(buf[pos:pos + 8 + n])
        pos += 8 + n
    return out


async def test_session_serves_a_client() -> None:
    pipe = Pipe()
    got: list[spdy.Stream] = []
    session = spdy.Session(pipe, got.append)
    serving = asyncio.ensure_future(session.serve())
    client = spdy.HeaderCodec()
    syn = struct.pack(">IIH", 1, 0, 0) + client.encode({"streamtype": "stdin"})
    pipe.inbox.put_nowait(spdy.control_frame(spdy.SYN_STREAM, 0, syn))
    pipe.inbox.put_nowait(spdy.data_frame(1, 0, b"hello"))
    pipe.inbox.put_nowait(spdy.data_frame(1, spdy.FLAG_FIN, b""))
    pipe.inbox.put_nowait(spdy.control_frame(spdy.PING, 0, struct.pack(">I", 7)))
    await asyncio.sleep(0.01)
    assert [s.headers for s in got] == [{"streamtype": "stdin"}]
    s = got[0]
    assert await s.read() == b"hello"
    assert await s.read() == b""  # FIN: end of stream
    s.write(b"out")
    s.close()
    sent = frames(bytes(pipe.out))
    reply = sent[0]
    assert struct.unpack(">HH", reply[:4]) == (0x8003, spdy.SYN_REPLY)
    assert struct.unpack(">I", reply[8:12])[0] == 1
    assert sent[1] == spdy.control_frame(spdy.PING, 0, struct.pack(">I", 7))  # echoed
    assert sent[2] == spdy.data_frame(1, 0, b"out")
    assert sent[3] == spdy.data_frame(1, spdy.FLAG_FIN, b"")
    pipe.inbox.put_nowait(b"")  # the client goes away
    await serving
    session.close()
    assert pipe.closed and frames(bytes(pipe.out))[-1][:4] == struct.pack(">HH", 0x8003, spdy.GOAWAY)


async def test_reset_stream_reads_as_ended() -> None:
    pipe = Pipe()
    got: list[spdy.Stream] = []
    session = spdy.Session(pipe, got.append)
    serving = asyncio.ensure_future(session.serve())
    client = spdy.HeaderCodec()
    pipe.inbox.put_nowait(spdy.control_frame(spdy.SYN_STREAM, 0, struct.pack(">IIH", 3, 0, 0) +
                                             client.encode({"streamtype": "data", "port": "80"})))
    pipe.inbox.put_nowait(spdy.control_frame(spdy.RST_STREAM, 0, struct.pack(">II", 3, spdy.RST_CANCEL)))
    await asyncio.sleep(0.01)
    assert got[0].reset and await got[0].read() == b""
    got[0].write(b"ignored")  # writes after a reset are dropped
    assert len(frames(bytes(pipe.out))) == 1  # only the SYN_REPLY
    pipe.inbox.put_nowait(b"")
    await serving
