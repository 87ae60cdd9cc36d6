# An echo server (asyncio): echoes every byte, half-closes after EOF.
# argv: [HOST]
import asyncio, socket, sys
host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"

async def echo(r, w):
    try:
        while True:
            b = await r.read(1 << 16)
            if not b:
                break
            w.write(b)
            await w.drain()
        if w.can_write_eof():
            w.write_eof()
    except OSError:
        pass
    finally:
        w.close()

async def main():
    srv = await asyncio.start_server(echo, host, 0, backlog=4096, reuse_address=True)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()

asyncio.run(main())
