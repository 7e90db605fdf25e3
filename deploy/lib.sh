# Shell helpers shared by the deploy scripts (sourced, not run).

# wait_port PORT SECONDS: returns once something listens on 127.0.0.1:PORT, or fails saying so.
wait_port() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1 after $2 s" >&2
    return 1
}
