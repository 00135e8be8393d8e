#!/usr/bin/env python3
"""Where imboxd's memory per idle session goes, from a heaptrack profile.

    heaptrack_print -f heaptrack.imboxd.zst --flamegraph-cost-type peak -F peak.txt
    bench/heap/breakdown.py peak.txt SESSIONS [--other]

Each stack's bytes at the heap's peak (all sessions open) go to the first
category whose pattern matches the frames above the allocator, divided by
the number of sessions. Patterns name quinn's, rustls's, tokio's and
imboxd's functions and source files as heaptrack prints them (release build
with line tables, `--features system-allocator`); see docs/BENCHMARKS.md,
"QUIC for phones (issue 16)".
"""
import sys, re, collections
N=int(sys.argv[2])
rules=[
 ("set up once at start (TLS session cache, QUIC socket buffers)", r"quic_server_config|bind_quic|\{async_fn#0\} \(server.rs\) > \{async_fn#0\} \(main.rs\)|block_on<> \(park.rs\) > \{async_fn#0\} \(server.rs\)"),
 ("database page cache (redb, filled by the sessions' resume and sync)", r"page_manager|cached_file|btree"),
 ("quinn: the connection's event channel (tokio unbounded mpsc: its first block of 32 events)", r"unbounded_channel<> \(unbounded.rs\) > insert \(endpoint.rs\)"),
 ("quinn: the connection object (ConnectionInner, quinn-proto's Connection inline)", r"insert \(endpoint.rs\) > accept \(endpoint.rs\)|insert \(endpoint.rs\) > accept \(endpoint.rs\) > new \(connection.rs\)"),
 ("rustls and ring: the TLS session quinn keeps, packet and header keys (1-RTT and the next key phase)", r"rustls|key_schedule|packet_key|header_protection_key|next_1rtt_keys|\(conn.rs\)|server_conn|\(hs.rs\)|tls13.rs|buffers.rs|common_state"),
 ("quinn: send buffer, kept at its largest transmit (GSO batches)", r"drive_transmit \(connection.rs\) > poll \(connection.rs\) > poll_transmit|poll_transmit \(mod.rs\) > grow|reserve<> \(mod.rs\) > poll_transmit"),
 ("quinn: streams, crypto streams, CIDs, sent packets, endpoint tables", r"quinn|endpoint.rs|assembler|\(state.rs\)|send_stream|recv.rs|paths.rs|packet_builder|spaces.rs|btree_range_set|write_crypto|read_crypto|issue_first_cids|insert_at|\(incoming.rs\)|drive_transmit|process_conn_events|handle_event"),
 ("tokio tasks (QUIC: session, connection driver, attachment acceptor; WSS: the HTTP connection with the session)", r"spawn_inner|bind_new_task"),
 ("imboxd: the session's router queue", r"register \(router.rs\)"),
 ("imboxd and hyper/tungstenite: transport buffers", r"connection.rs|quic.rs|websocket.rs|http.rs|feed.rs|lib.rs|handshake.rs|select.rs"),
]
agg=collections.Counter(); other=collections.Counter()
for line in open(sys.argv[1], errors='replace'):
    stack,_,c=line.rstrip('\n').rpartition(' ')
    try: c=int(c)
    except: continue
    fr=stack.split(';')
    cut=next((i for i,f in enumerate(fr) if '__rdl_' in f or 'malloc' in f), len(fr))
    s=' > '.join(fr[:cut])
    for name,rx in rules:
        if re.search(rx,s): agg[name]+=c; break
    else:
        agg['other']+=c; other[' > '.join(x[:50] for x in fr[:cut][-5:])]+=c
for name,_ in rules+[("other","")]: print(f"{agg[name]/N:8.0f}  {name}")
print(f"{sum(agg.values())/N:8.0f}  total")
if '--other' in sys.argv[3:]:
  for k,c in other.most_common(8): print('   other:',c//N,k)
