# Helpers for the test scripts: free ports, background servers in their own process group
# (so stopping one stops its children), and waiting for HTTP.

step() { printf '\n== %s\n' "$*"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

started_groups=()
stop_started() {
  local pgid
  for pgid in "${started_groups[@]}"; do
    kill -TERM -- "-$pgid" 2>/dev/null || true
  done
  for pgid in "${started_groups[@]}"; do
    for _ in $(seq 50); do
      kill -0 -- "-$pgid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
  done
}
trap stop_started EXIT
trap 'exit 130' INT TERM

# start_group LOGFILE COMMAND...: runs COMMAND in the background in a new process group.
start_group() {
  local log=$1
  shift
  mkdir -p "$(dirname "$log")"
  setsid "$@" >"$log" 2>&1 &
  started_groups+=("$!")
}

# wait_for_http URL SECONDS: until URL answers with any HTTP status.
wait_for_http() {
  local url=$1 deadline=$((SECONDS + $2))
  until curl -s -o /dev/null "$url"; do
    if ((SECONDS > deadline)); then
      echo "timed out waiting for $url" >&2
      return 1
    fi
    sleep 0.5
  done
}
