#!/usr/bin/env bash
# The Docker cluster of infra/docker-compose.yaml, for `make docker-up`,
# `make docker-down` and `make logs DOCKER=1`:
#
#   scripts/docker-cluster.sh build   check engine and base image, build the service images
#   scripts/docker-cluster.sh up      check engine, ports and images, build, start, say where to look
#   scripts/docker-cluster.sh down    remove every container, network and volume of the project
#   scripts/docker-cluster.sh logs    follow the containers' logs
#
# Settings, from the environment (make passes its command-line variables):
#   COMPOSE_PROJECT   project name (default pangea); containers, network and volumes are its own
#   DATA              your data file(s), comma-separated, all in one directory (default: built-in synthetic data)
#   FORMAT            criteo, instance, example, examplebatch or parquet (default criteo)
#   FRAMING, COMPRESSION, SORT_ID   Monolith files' record framing, compression, sort ids (compute's flags)
#   FEATURE_LIST      the feature list file (needed for Monolith and Parquet data); also exported with the model
#   STEPS, TRAINERS, BATCHES_PER_STEP, PANGEA_BIND and the *_PORT variables: see infra/docker-compose.yaml
#   KEEP_VOLUMES=1    docker-down keeps the checkpoints, models, record cache and etcd volumes
# docker-up remembers a project's settings (.pangea/docker/PROJECT.settings): run again
# without them (after a docker kill, say), it starts the same job on the same data and
# ports; a variable given again replaces its value. docker-down forgets them, unless
# KEEP_VOLUMES=1 keeps the checkpoints they belong with.
# Every failure is one line naming the problem and what to do, exit status 1,
# and nothing half-started is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."

cmd=${1:-}
PROJECT=${COMPOSE_PROJECT:-pangea}
FILE=infra/docker-compose.yaml
# CHOICES_<VARIABLE> and EXPECTED_<VARIABLE>: compute's choices for FORMAT, FRAMING, COMPRESSION and SORT_ID.
. scripts/docker-choices.sh
OVERRIDE=.pangea/docker/$PROJECT.data.yaml
# docker-up's copy of the earlier start's settings while this start may yet be refused (removed on exit).
BEFORE=.pangea/docker/$PROJECT.before
SETTINGS=.pangea/docker/$PROJECT.settings
# What docker-up remembers for the next start of the project; the first six describe the data.
DATA_NAMES=(DATA FORMAT FRAMING COMPRESSION SORT_ID FEATURE_LIST)
SETTING_NAMES=("${DATA_NAMES[@]}" STEPS TRAINERS BATCHES_PER_STEP PANGEA_BIND
  ORCHESTRATOR_PORT DASHBOARD_PORT SERVING_GRPC_PORT SERVING_REST_PORT PROMETHEUS_PORT GRAFANA_PORT)

say() { printf 'make docker-%s: %s\n' "$cmd" "$*"; }
# What the printed commands need to name this project (nothing for the default one).
PROJECT_ARG=""; [ "$PROJECT" = pangea ] || PROJECT_ARG=" COMPOSE_PROJECT=$PROJECT"
die() { printf 'make docker-%s: %s\n' "$cmd" "$*" >&2; exit 1; }
# Compose's own rule for a project name: it folds another silently ("H130 BAD" ran as h130bad, which docker-down
# "H130 BAD" then did not find), and the name is part of the files kept under .pangea/docker.
[[ "$PROJECT" =~ ^[a-z0-9][a-z0-9_-]*$ ]] || die "COMPOSE_PROJECT: expected lowercase letters, digits, '_' and '-', starting with a letter or digit, got '$PROJECT'"

if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null; then COMPOSE=(docker-compose)
else die "neither 'docker compose' nor 'docker-compose' is installed: install Docker Compose (Debian: apt-get install docker-compose)"
fi
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f "$FILE" "$@"; }

engine_answers() {
  local err
  err=$(docker info 2>&1 >/dev/null) && return 0
  die "no Docker engine answers ($(printf '%s' "$err" | grep -v '^\s*$' | tail -n 1)): start it (e.g. sudo systemctl start docker) and run make docker-$cmd again"
}

# The external images: the Dockerfile's base and the compose file's images,
# less our own and Kafka's (its profile is started by hand).
external_images() {
  { sed -n 's/^FROM \([^ ]*:[^ ]*\) AS .*/\1/p' infra/Dockerfile; sed -n 's/^ *image: *\([^ ]*\).*/\1/p' "$FILE"; } \
    | grep -v -e '^pangea/' -e 'kafka' | sort -u
}

# 0 when the image is here or could be pulled; prints the pull's last error line otherwise.
have_image() {
  docker image inspect "$1" >/dev/null 2>&1 && return 0
  local out
  out=$(docker pull -q "$1" 2>&1) && return 0
  printf '%s' "$out" | grep -v '^\s*$' | tail -n 1
  return 1
}

port_free() { # host port -> 0 when a listener could bind it
  node -e 'const s=require("net").createServer();s.once("error",()=>process.exit(1));s.listen(+process.argv[2],process.argv[1],()=>s.close())' "$1" "$2" 2>/dev/null
}

# The services run as the image's user `node` (uid 1000): a mounted file must
# be readable (r) and a directory searchable (x) by it, as its owner or as "other".
readable_in_containers() { # path r|x
  local uid mode bit
  read -r uid mode < <(stat -L -c '%u %a' "$1")
  mode=$((8#$mode))
  if [ "$uid" = 1000 ]; then bit=$([ "$2" = r ] && echo 256 || echo 64); else bit=$([ "$2" = r ] && echo 4 || echo 1); fi
  [ $((mode & bit)) -ne 0 ]
}

# The settings of the project's earlier docker-up, for the variables not given now.
# The data's variables go together: with DATA given (even empty), none of the
# others is taken from the earlier start (its FORMAT or FEATURE_LIST would not
# fit other data).
load_settings() {
  [ "$cmd" = up ] && [ -f "$SETTINGS" ] || return 0
  local name value kept=() data_given=${DATA+x}
  while IFS='=' read -r name value; do
    case " ${SETTING_NAMES[*]} " in *" $name "*) ;; *) continue ;; esac
    [ -z "${!name+x}" ] || continue
    case " ${DATA_NAMES[*]} " in *" $name "*) [ -z "$data_given" ] || continue ;; esac
    export "$name=$value"
    [ -z "$value" ] || kept+=("$name=$value")
  done <"$SETTINGS"
  [ ${#kept[@]} -eq 0 ] || say "with the settings of the earlier start of '$PROJECT': ${kept[*]} (give a variable to change it; make docker-down forgets them)"
}

save_settings() {
  local name
  mkdir -p "$(dirname "$SETTINGS")"
  for name in "${SETTING_NAMES[@]}"; do printf '%s=%s\n' "$name" "${!name:-}"; done >"$SETTINGS"
}

# DATA and friends as a compose override (the data directory mounted read-only
# at /data/input, compute's flags as its environment), written to $OVERRIDE.new: the caller
# moves it into place once every check has passed, so a refused docker-up
# leaves a running project's data as it was.
write_data_override() {
  rm -f "$OVERRIDE.new"
  [ -n "${DATA:-}" ] || { [ -z "${FEATURE_LIST:-}" ] || die "FEATURE_LIST is given without DATA"; return 0; }
  local dir="" paths=() p abs
  IFS=',' read -r -a items <<<"$DATA"
  for p in "${items[@]}"; do
    [ -n "$p" ] || continue
    [ -f "$p" ] || die "DATA: $p is not a file (give data files, comma-separated, all in one directory)"
    abs=$(readlink -f "$p")
    [ -n "$dir" ] || dir=$(dirname "$abs")
    [ "$(dirname "$abs")" = "$dir" ] || die "DATA: $p is not in $dir; put the data files in one directory"
    readable_in_containers "$abs" r || die "DATA: $p is not readable by the containers' user (uid 1000): chmod o+r $p"
    paths+=("/data/input/$(basename "$abs")")
  done
  [ ${#paths[@]} -gt 0 ] || die "DATA is empty"
  readable_in_containers "$dir" x || die "DATA: the directory $dir is not readable by the containers' user (uid 1000): chmod o+rx $dir"
  [ -z "${FEATURE_LIST:-}" ] || readable_in_containers "$(readlink -f "$FEATURE_LIST")" r || die "FEATURE_LIST: $FEATURE_LIST is not readable by the containers' user (uid 1000): chmod o+r $FEATURE_LIST"
  local list; list=$(IFS=','; echo "${paths[*]}")
  mkdir -p "$(dirname "$OVERRIDE")"
  {
    echo "# Generated by scripts/docker-cluster.sh for DATA=$DATA; do not edit."
    echo "services:"
    echo "  compute:"
    echo "    volumes:"
    echo "      - \"$dir:/data/input:ro\""
    [ -z "${FEATURE_LIST:-}" ] || echo "      - \"$(readlink -f "$FEATURE_LIST"):/data/feature-list/$(basename "$FEATURE_LIST"):ro\""
    echo "    environment:"
    echo "      PANGEA_DATA: \"$list\""
    echo "      PANGEA_FORMAT: \"${FORMAT:-criteo}\""
    [ -z "${FRAMING:-}" ] || echo "      PANGEA_FRAMING: \"$FRAMING\""
    [ -z "${COMPRESSION:-}" ] || echo "      PANGEA_COMPRESSION: \"$COMPRESSION\""
    [ -z "${SORT_ID:-}" ] || echo "      PANGEA_SORT_ID: \"$SORT_ID\""
    [ -z "${FEATURE_LIST:-}" ] || echo "      PANGEA_FEATURE_LIST: \"/data/feature-list/$(basename "$FEATURE_LIST")\""
    if [ -n "${FEATURE_LIST:-}" ]; then
      echo "  orchestrator:"
      echo "    volumes:"
      echo "      - \"$(readlink -f "$FEATURE_LIST"):/data/feature-list/$(basename "$FEATURE_LIST"):ro\""
      echo "    environment:"
      echo "      PANGEA_EXPORT_FEATURE_LIST: \"/data/feature-list/$(basename "$FEATURE_LIST")\""
    fi
  } >"$OVERRIDE.new"
}

# The settings' values, checked before anything is built or started (and before
# they are remembered): a value the services would refuse after a minute's build
# is refused here in one line. The choices are compute's flags' (packages/service-flags).
check_settings() {
  local name v
  for name in STEPS TRAINERS; do
    v=${!name:-}
    [ -z "$v" ] || { [[ $v =~ ^[0-9]{1,9}$ ]] && [ $((10#$v)) -ge 1 ]; } || die "$name: expected a whole number from 1 to 999999999, got '$v'"
  done
  v=${BATCHES_PER_STEP:-}
  [ -z "$v" ] || { [[ $v =~ ^[0-9]{1,4}$ ]] && [ $((10#$v)) -le 4096 ]; } || die "BATCHES_PER_STEP: expected a whole number from 0 (one batch per trainer) to 4096, got '$v'"
  local ports=() spec port
  for name in ORCHESTRATOR_PORT DASHBOARD_PORT SERVING_GRPC_PORT SERVING_REST_PORT PROMETHEUS_PORT GRAFANA_PORT; do
    v=${!name:-}
    [ -z "$v" ] || { [[ $v =~ ^[0-9]{1,5}$ ]] && [ $((10#$v)) -ge 1 ] && [ $((10#$v)) -le 65535 ]; } || die "$name: expected a port number from 1 to 65535, got '$v'"
  done
  for spec in "ORCHESTRATOR_PORT:${ORCHESTRATOR_PORT:-50051}" "DASHBOARD_PORT:${DASHBOARD_PORT:-9400}" "SERVING_GRPC_PORT:${SERVING_GRPC_PORT:-8500}" \
    "SERVING_REST_PORT:${SERVING_REST_PORT:-8501}" "PROMETHEUS_PORT:${PROMETHEUS_PORT:-9090}" "GRAFANA_PORT:${GRAFANA_PORT:-3000}"; do
    port=$((10#${spec#*:}))
    for v in "${ports[@]}"; do [ "${v#*:}" != "$port" ] || die "${spec%%:*} and ${v%%:*} are both port $port; give each its own"; done
    ports+=("${spec%%:*}:$port")
  done
  node -e 'process.exit(require("net").isIP(process.argv[1]) ? 0 : 1)' "$BIND" || die "PANGEA_BIND: expected an IP address of this host to publish the ports on (e.g. 127.0.0.1 or 0.0.0.0), got '$BIND'"
  # Compute's own choices for its flags (scripts/docker-choices.sh is generated from them); absent takes compute's default.
  local choices expected choice known
  for name in FORMAT FRAMING COMPRESSION SORT_ID; do
    v=${!name:-} choices=CHOICES_$name expected=EXPECTED_$name known=""
    [ -n "$v" ] || continue
    for choice in ${!choices}; do [ "$v" != "$choice" ] || known=1; done
    [ -n "$known" ] || die "$name: ${!expected}, got '$v'"
  done
  if [ -n "${DATA:-}" ] && [ "${FORMAT:-criteo}" != criteo ] && [ -z "${FEATURE_LIST:-}" ]; then
    die "FORMAT=$FORMAT needs FEATURE_LIST: the feature list the records are read with (see the README's Data formats)"
  fi
  if [ -n "${FEATURE_LIST:-}" ] && [ ! -f "$FEATURE_LIST" ]; then die "FEATURE_LIST: $FEATURE_LIST is not a file"; fi
  # Read as compute will read it, where this checkout has the packages built (make build): a list that is no feature
  # list was found only by compute, after the images were built (~16 s). Without the build, compute still refuses it.
  if [ -n "${FEATURE_LIST:-}" ] && [ -f packages/features/dist/index.js ]; then
    local why
    why=$(node --input-type=module -e '
      const { loadFeatureList } = await import(process.argv[1]);
      try { loadFeatureList(process.argv[2]); } catch (err) { console.log(err.message); }' "$PWD/packages/features/dist/index.js" "$FEATURE_LIST" 2>&1) || die "FEATURE_LIST: could not be checked: $why"
    [ -z "$why" ] || die "FEATURE_LIST: $why"
  fi
  return 0
}

# One docker-up or docker-down of a project at a time: two would start, or remove,
# the same containers under each other. The lock is a directory holding the pid.
LOCK=.pangea/docker/$PROJECT.lock
take_lock() {
  mkdir -p "$(dirname "$LOCK")"
  if ! mkdir "$LOCK" 2>/dev/null; then
    local pid
    pid=$(cat "$LOCK/pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      die "another make docker-up or docker-down of project '$PROJECT' is running (pid $pid); wait for it to end, or give this one another COMPOSE_PROJECT"
    fi
    # Its holder is gone (killed): the lock is stale.
    rm -rf "$LOCK"
    mkdir "$LOCK" 2>/dev/null || die "another make docker-up or docker-down of project '$PROJECT' has just started; wait for it to end"
  fi
  echo $$ >"$LOCK/pid"
  trap 'rm -rf "$LOCK" "$OVERRIDE.new" "$BEFORE"' EXIT
}

# The project's services that exited with an error or keep restarting, one per line:
# "<exit code> <service>: <its last line of its own>" (a service ends with a line
# "pangea-<service>: ..." saying why). Each is kept down: restart: on-failure would
# start a refused one again and again, so its restarts are turned off and it is
# given a moment to exit on its own (its exit code says whether it was refused).
failing_services() {
  local id name status code restarts line
  for id in $(compose ps -aq 2>/dev/null); do
    read -r name status code restarts < <(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}' "$id" 2>/dev/null) || continue
    [ "$restarts" -gt 0 ] || [ "$status" = restarting ] || { [ "$status" = exited ] && [ "$code" != 0 ]; } || continue
    docker update --restart=no "$id" >/dev/null 2>&1 || true
    if [ "$status" = running ]; then
      code=$(timeout 20 docker wait "$id" 2>/dev/null) || { docker stop -t 5 "$id" >/dev/null 2>&1 || true; code=$(docker inspect -f '{{.State.ExitCode}}' "$id" 2>/dev/null || echo 1); }
    else
      docker stop -t 5 "$id" >/dev/null 2>&1 || true
    fi
    [ "$code" != 0 ] || code=1
    # A service's hint names its flag; here the variable sets it.
    line=$(docker logs "$id" 2>&1 | grep -E '^pangea-[a-z-]+: ' | tail -n 1 | cut -c1-600 | sed 's/--batches-per-step \([0-9][0-9]*\)/BATCHES_PER_STEP=\1/g' || true)
    printf '%s %s: %s\n' "$code" "$name" "${line:-exited with code $code (make logs DOCKER=1$PROJECT_ARG shows why)}"
  done
}

# What make docker-build and make docker-up both run: compose builds every
# service's image from infra/Dockerfile (unchanged layers come from the cache).
job_state() { # orchestrator container -> "state<TAB>step<TAB>steps<TAB>error" from its dashboard, or nothing
  # Asked inside the container: the dashboard there is at a known address whatever PANGEA_BIND publishes it on.
  docker exec "$1" node -e '
    fetch("http://127.0.0.1:9400/status.json").then((r) => r.json()).then(({ status: s }) => {
      process.stdout.write([String(s.state).replace("JOB_STATE_", "").toLowerCase(), s.step, s.steps, String(s.error || "").replace(/\s+/g, " ")].join("\t"));
    }).catch(() => {});' 2>/dev/null || true
}

build_images() { # compose file arguments
  local started=$SECONDS
  say "building the images (infra/Dockerfile)"
  "${COMPOSE[@]}" -p "$PROJECT" "$@" build || die "building the images failed (the build's output above says why)"
  say "images built in $((SECONDS - started)) s"
}

build() {
  engine_answers
  local img why
  for img in $(sed -n 's/^FROM \([^ ]*:[^ ]*\) AS .*/\1/p' infra/Dockerfile | sort -u); do
    why=$(have_image "$img") || die "cannot pull $img ($why): check the engine's registry access, or 'docker load' the image, then run make docker-build again"
  done
  build_images -f "$FILE"
}

up() {
  check_settings
  take_lock
  engine_answers
  write_data_override

  local profiles=() img why
  for img in $(external_images); do
    if why=$(have_image "$img"); then continue; fi
    case "$img" in
      grafana/*) say "Grafana's image $img cannot be had ($why); starting without Grafana" ;;
      *) die "cannot pull $img ($why): check the engine's registry access, or 'docker load' the image, then run make docker-up again" ;;
    esac
  done
  for img in $(external_images); do
    case "$img" in grafana/*) docker image inspect "$img" >/dev/null 2>&1 && profiles+=(--profile grafana) ;; esac
  done

  # Ports matter only for a project that is not already running (up again is a no-op for running containers).
  local running
  running=$(compose ps -q 2>/dev/null || true)
  if [ -z "$running" ]; then
    local spec name port
    local specs=("ORCHESTRATOR_PORT:${ORCHESTRATOR_PORT:-50051}" "DASHBOARD_PORT:${DASHBOARD_PORT:-9400}" "SERVING_GRPC_PORT:${SERVING_GRPC_PORT:-8500}"
      "SERVING_REST_PORT:${SERVING_REST_PORT:-8501}" "PROMETHEUS_PORT:${PROMETHEUS_PORT:-9090}")
    [ ${#profiles[@]} -eq 0 ] || specs+=("GRAFANA_PORT:${GRAFANA_PORT:-3000}")
    for spec in "${specs[@]}"; do
      name=${spec%%:*} port=${spec#*:}
      port=$((10#$port))
      local other=$((port + 10000)); [ "$other" -le 65535 ] || other=$((port - 10000))
      port_free "$BIND" "$port" || die "port $port on $BIND ($name) is already in use: stop what holds it, or pick another, e.g. make docker-up$PROJECT_ARG $name=$other"
    done
  fi

  # Every check passed: this start's data and settings replace the earlier ones. Saved before the containers start:
  # volumes a failed start leaves may already hold this data's checkpoints. The earlier ones are kept aside until the
  # start is known not to be refused (a service exiting 2 for a configuration its checkpoint or data contradicts).
  local before=$BEFORE earlier=""
  rm -rf "$before"; mkdir -p "$before"
  [ ! -f "$SETTINGS" ] || { cp -p "$SETTINGS" "$before/settings"; earlier=1; }
  [ ! -f "$OVERRIDE" ] || cp -p "$OVERRIDE" "$before/data.yaml"
  [ -z "$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ] || earlier=1
  if [ -f "$OVERRIDE.new" ]; then mv -f "$OVERRIDE.new" "$OVERRIDE"; else rm -f "$OVERRIDE"; fi
  save_settings
  local files=(-f "$FILE")
  [ ! -f "$OVERRIDE" ] || files+=(-f "$OVERRIDE")
  local started=$SECONDS
  build_images "${files[@]}"
  # A job that failed stays failed in its orchestrator, which keeps answering its status: started again, it resumes
  # from the job's newest checkpoint, and compose starts the trainers that exited with the job.
  local failed_orch
  failed_orch=$(compose ps -q orchestrator 2>/dev/null || true)
  if [ -n "$failed_orch" ] && [ "$(job_state "$failed_orch" | cut -f1)" = failed ]; then
    say "the job had failed; restarting the orchestrator, which resumes from the job's newest checkpoint"
    docker restart "$failed_orch" >/dev/null || die "could not restart the orchestrator container: make docker-down$PROJECT_ARG KEEP_VOLUMES=1, then make docker-up$PROJECT_ARG"
  fi
  say "starting the cluster"
  if ! "${COMPOSE[@]}" -p "$PROJECT" "${files[@]}" "${profiles[@]}" up -d --remove-orphans; then
    say "the last log lines of each service:"
    compose logs --no-color --tail 3 2>/dev/null | grep -v '^Attaching' || true
    # Compose names a dependent that never turned healthy; the service at fault is the one that exited.
    local failing why
    failing=$(failing_services)
    why=$(printf '%s\n' "$failing" | sed -n 's/^[0-9]* //p' | paste -sd ';' - | sed 's/;/; /g')
    why=${why:+: $why}
    if [ -n "$earlier" ]; then
      # The project ran before this start: its checkpoints and what it runs are not this start's to remove. A refusal
      # (exit 2) trained nothing with this start's settings: the earlier ones are put back.
      if printf '%s\n' "$failing" | grep -q '^2 '; then
        if [ -f "$before/settings" ]; then cp -p "$before/settings" "$SETTINGS"; else rm -f "$SETTINGS"; fi
        if [ -f "$before/data.yaml" ]; then cp -p "$before/data.yaml" "$OVERRIDE"; else rm -f "$OVERRIDE"; fi
        die "starting the containers failed$why; the refused service is stopped and the earlier start's settings are kept: make docker-up$PROJECT_ARG without the changed variables starts the job as before, or make docker-down$PROJECT_ARG first starts a new one"
      fi
      die "starting the containers failed${why:- (see above)}; the project's other containers are left running: fix the setting and run make docker-up$PROJECT_ARG again, or make docker-down$PROJECT_ARG"
    fi
    # A new project: nothing of this start stays (containers, volumes, settings).
    compose --profile grafana down -v --remove-orphans >/dev/null 2>&1 || true
    rm -f "$SETTINGS" "$OVERRIDE"
    die "starting the containers failed${why:- (see above)}; the containers and volumes this start made were removed"
  fi
  # The services talk mutual TLS with the certs volume's certificates; the host's
  # CLI calls as admin, and REST/gRPC clients trust ca.crt.
  # The admin certificate is in the certs volume only, which no service mounts: copied out of the one-shot certs container.
  local tls=".pangea/docker/$PROJECT-tls" orch certs
  orch=$(compose ps -q orchestrator)
  certs=$(compose ps -aq certs | head -n 1)
  mkdir -p "$tls"
  for f in ca.crt admin.crt admin.key; do
    docker cp "$certs:/certs/$f" "$tls/$f" >/dev/null || die "could not copy /certs/$f out of the certs container"
  done
  chmod 600 "$tls/admin.key"
  # A project's volumes may hold a job that has ended: say so rather than that it trains.
  local state="" step="" steps="" error="" job rc=0
  job=$(job_state "$orch")
  [ -z "$job" ] || IFS=$'\t' read -r state step steps error <<<"$job"
  case "$state" in
    completed) job="the job had completed at step $step of $steps and trains no further: make docker-up STEPS=N (N > $step) trains on, make docker-down first starts a new job" ;;
    failed) job="the job failed: $error (once its cause is fixed, make docker-up$PROJECT_ARG again resumes it from its newest checkpoint; make docker-down$PROJECT_ARG first starts a new job)"; rc=1 ;;
    *) job="the job trains in the background" ;;
  esac
  cat <<TXT
make docker-up: cluster '$PROJECT' is up in $((SECONDS - started)) s; $job.
  dashboard     http://$BIND:${DASHBOARD_PORT:-9400}/    (metrics at /metrics)
  job status    ./pangea status --orchestrator $BIND:${ORCHESTRATOR_PORT:-50051} --tls-dir $tls    (after make build)
  serving       REST https://$BIND:${SERVING_REST_PORT:-8501}/v1/models/ctr, gRPC $BIND:${SERVING_GRPC_PORT:-8500} (model ctr; TLS: trust $tls/ca.crt)
  prometheus    http://$BIND:${PROMETHEUS_PORT:-9090}/targets
TXT
  [ ${#profiles[@]} -eq 0 ] || echo "  grafana       http://$BIND:${GRAFANA_PORT:-3000}/"
  cat <<TXT
  follow        make logs DOCKER=1$PROJECT_ARG
  stop          make docker-down$PROJECT_ARG    (KEEP_VOLUMES=1 keeps checkpoints and models)
TXT
  return "$rc"
}

down() {
  take_lock
  engine_answers
  local v=(-v)
  [ "${KEEP_VOLUMES:-0}" != 1 ] || v=()
  # Compose names every object it does not find ("Volume ... not found"), which reads
  # like an error on a second docker-down; say once that there is nothing instead.
  local label="label=com.docker.compose.project=$PROJECT"
  if [ -z "$(docker ps -aq --filter "$label")$(docker network ls -q --filter "$label")$(docker volume ls -q --filter "$label")" ]; then
    say "project '$PROJECT' has no containers, networks or volumes; nothing to remove"
  else
    compose --profile grafana --profile kafka down "${v[@]}" --remove-orphans
  fi
  # The host's copy of the admin certificate goes with the volume that holds its CA, and the
  # settings with the checkpoints they trained.
  [ "${KEEP_VOLUMES:-0}" = 1 ] || rm -rf ".pangea/docker/$PROJECT-tls" "$OVERRIDE" "$SETTINGS"
}

load_settings
BIND=${PANGEA_BIND:-127.0.0.1}

case "$cmd" in
  build) build ;;
  up) up ;;
  down) down ;;
  logs)
    engine_answers
    # Compose follows nothing, and exits 0, for a project with no containers (a COMPOSE_PROJECT left out or misspelt).
    [ -n "$(compose ps -aq 2>/dev/null)" ] || die "project '$PROJECT' has no containers: give the COMPOSE_PROJECT make docker-up started (make logs DOCKER=1 COMPOSE_PROJECT=NAME)"
    compose logs -f ;;
  *) echo "usage: scripts/docker-cluster.sh build|up|down|logs" >&2; exit 2 ;;
esac
