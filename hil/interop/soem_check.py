#!/usr/bin/env python3
"""Interoperability check: SOEM (through pysoem) as the master of Lumen's emulated EtherCAT slaves.

Run by hil/interop/soem_check.sh, which builds the veth pair and starts the slaves. Prints how far
SOEM gets: config_init (slave count), config_map (process-data size), SAFE-OP, OP.
"""
import sys, time, pysoem
m = pysoem.Master()
m.open(sys.argv[1])
n = m.config_init()
print("config_init found", n, "slaves")
if n > 0:
    for s in m.slaves:
        print(" slave", s.name, hex(s.man), hex(s.id), "state", s.state)
    try:
        size = m.config_map()
        print("config_map io size", size)
    except Exception as e:
        print("config_map failed:", e)
    print("SAFEOP reached:", m.state_check(pysoem.SAFEOP_STATE, 50000) == pysoem.SAFEOP_STATE)
    for s in m.slaves:
        print(" slave state", hex(s.state), "al status code", hex(s.al_status))
    m.state = pysoem.OP_STATE
    m.write_state()
    for _ in range(200):
        m.send_processdata(); m.receive_processdata(2000); time.sleep(0.001)
    print("OP reached:", m.state_check(pysoem.OP_STATE, 50000) == pysoem.OP_STATE)
    m.read_state()
    for s in m.slaves:
        print(" slave state", hex(s.state), "al status code", hex(s.al_status))
m.close()
