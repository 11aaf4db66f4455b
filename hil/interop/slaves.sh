# Sourced by the scripts that start Lumen's emulated EtherCAT slaves for another program to master.
# start_slaves LOG CMD...: starts CMD in the background (its stderr copied to LOG and to ours),
# sets SLAVES_PID, and returns once the slaves say they serve. A fixed sleep is not enough: on a
# fresh machine the first start of a large debug binary took longer than a second, and the
# master gave up on a segment that was not there yet.
start_slaves() {
    local log=$1; shift
    : > "$log"
    "$@" 2> >(tee -a "$log" >&2) &
    SLAVES_PID=$!
    local waited=0
    until grep -q "EtherCAT slaves on" "$log"; do
        if ! kill -0 "$SLAVES_PID" 2>/dev/null; then
            echo "the emulated EtherCAT slaves exited before they served (see above)" >&2
            return 1
        fi
        if [ "$waited" -ge 600 ]; then
            echo "the emulated EtherCAT slaves did not serve within 60 s" >&2
            kill "$SLAVES_PID" 2>/dev/null || true
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}
