# nbs's stand-in for nixpkgs' pkgs/stdenv/generic/setup.sh, for the
# offline tests (no nixpkgs). We wrote it after reading nixpkgs' files;
# it is our code, much smaller, and keeps only what nbs depends on, so
# that the tests meet the traps a user of the real stdenv meets:
#   - errexit, nounset, pipefail, inherit_errexit and nullglob on while
#     setup runs; errexit and nounset put back as the caller had them at
#     the end (as nix-shell needs);
#   - structured attrs: on when .attrs.sh is in the current directory or
#     NIX_ATTRS_JSON_FILE is set; the outputs and env.* exported;
#     NIX_ATTRS_JSON_FILE and NIX_ATTRS_SH_FILE pointed at the build
#     directory when they name no file (NixOS/nix#6736);
#   - PATH made from initialPath, then the inputs' bin/ put first; the
#     inputs' nix-support/setup-hook sourced, which may register env
#     hooks (addEnvHooks) and extend flags;
#   - NIX_LDFLAGS gets `-rpath $out/lib` in front on every sourcing;
#   - an EXIT trap that runs failureHook or exitHook;
#   - env-vars written by dumpVars with `install -m 0600` (then filled by
#     `export -p`) when setup ends and when each phase starts, unless
#     noDumpEnvVars=1;
#   - runPhase and genericBuild: the same phase list (prePhases,
#     preConfigurePhases… around the standard phases, or phases), the
#     dontX / doX switches, the phase's variable run instead of its
#     function, "Running phase: NAME" (and Nix's setPhase on NIX_LOG_FD),
#     a buildCommand instead of phases, the cd into sourceRoot after
#     unpackPhase; a failing command ends the build with its status.
# Its messages are its own, except "Running phase:", which nbs reads in
# Nix's build logs.

__standinOptions=$-
set -eu -o pipefail
shopt -s inherit_errexit

######################################################################
# Library: functions phases and setup hooks call.

# The nix*Log functions: the message goes to Nix's log (NIX_LOG_FD) when
# NIX_DEBUG is at least the level (error 0 … vomit 7).
__logAtLevel() {
    local level=$1
    shift
    if [[ -z ${NIX_LOG_FD-} ]] || ((${NIX_DEBUG:-0} < level)); then return 0; fi
    printf '%s\n' "$*" >&"$NIX_LOG_FD"
}
__level=0
for __name in Error Warn Notice Info Talkative Chatty Debug Vomit; do
    eval "nix${__name}Log() { __logAtLevel $__level \"\$@\"; }"
    __level=$((__level + 1))
done
unset __level __name

# Hooks. Hook NAME is first the derivation's own NAME: a function, a
# script on PATH, or a variable whose value is code. Then the entries of
# the array named NAME less a trailing "Hook", plus "Hooks"
# (preConfigure: preConfigureHooks; envHostTargetHook:
# envHostTargetHooks): a function is called with runHook's arguments,
# anything else is evaluated.

# __ownHook ABSENT NAME: runs the derivation's own hook NAME, without
# arguments; ABSENT is the status when there is none.
__ownHook() {
    local absent=$1 name=$2
    if declare -F -- "$name" >/dev/null; then
        "$name"
    elif type -p -- "$name" >/dev/null; then
        . "$name"
    elif [[ -n ${!name:-} ]]; then
        eval "${!name}"
    else
        return "$absent"
    fi
}

# __hookEntry ENTRY ARGS: one entry of a hook array. A function or eval
# of its own, so that `return` in the hook's code ends only the hook.
__hookEntry() {
    case $(type -t -- "$1") in
    function) "$@" ;;
    *) eval "$1" ;;
    esac
}

# runHook NAME ARGS: every hook NAME, in order; a failure ends the build
# (errexit). Returns 0.
runHook() {
    local __hookName=$1
    shift
    local -n __entries=${__hookName%Hook}Hooks
    local __entry
    __ownHook 0 "$__hookName"
    for __entry in ${__entries[@]+"${__entries[@]}"}; do
        __hookEntry "$__entry" "$@"
    done
    return 0
}

# runOneHook NAME ARGS: the hooks NAME in order until one succeeds;
# fails when none does.
runOneHook() {
    local __hookName=$1
    shift
    local -n __entries=${__hookName%Hook}Hooks
    local __entry
    __ownHook 1 "$__hookName" && return 0
    for __entry in ${__entries[@]+"${__entries[@]}"}; do
        __hookEntry "$__entry" "$@" && return 0
    done
    return 1
}

# addToSearchPath VAR DIR: appends the directory DIR to the
# colon-separated VAR (exported) unless it is there already.
addToSearchPath() {
    local var=$1 dir=$2 now
    [[ -d $dir ]] || return 0
    now=${!var:-}
    case ":$now:" in
    *":$dir:"*) ;;
    *) export "$var=${now:+$now:}$dir" ;;
    esac
}

# concatTo ARRAY NAME[=DEFAULT]…: appends to the indexed ARRAY the words
# of each NAME: an array's elements, a string's words (split at
# whitespace); DEFAULT instead when NAME is empty or unset.
concatTo() {
    local -n __to=$1
    shift
    local __spec __var __default __kind
    for __spec; do
        __var=${__spec%%=*}
        __default=
        if [[ $__spec == *=* ]]; then __default=${__spec#*=}; fi
        local -n __from=$__var
        if [[ -n $__default && -z ${__from[*]:-} ]]; then
            __to+=("$__default")
            continue
        fi
        __kind=$(declare -p "$__var" 2>/dev/null) || continue
        __kind=${__kind#declare -}
        case ${__kind%% *} in
        *A*) echo "concatTo: $__var is an associative array, which has no order" >&2; return 1 ;;
        *a*) __to+=("${__from[@]}") ;;
        *) __to+=(${__from-}) ;;
        esac
    done
}

# getAllOutputNames: the names of the outputs, space-separated.
getAllOutputNames() {
    if [[ -z $__structuredAttrs ]]; then
        echo "$outputs"
        return
    fi
    echo "${!outputs[*]}"
}

# stripHash PATH: PATH's last component without a store hash in front.
stripHash() {
    local base=${1%/}
    base=${base##*/}
    if ((${#base} > 33)) && [[ ${base:32:1} == - && ${base:0:32} != *[!0-9a-z]* ]]; then
        base=${base:33}
    fi
    echo "$base"
}

# addEnvHooks OFFSET FUNCTION…: FUNCTIONs run once per input after every
# setup hook has been sourced, with the input as argument. The stand-in
# has one kind of input, so OFFSET does not matter.
declare -a envHostTargetHooks
addEnvHooks() {
    shift
    envHostTargetHooks+=("$@")
}
declare -a preConfigureHooks postUnpackHooks preFixupHooks postFixupHooks unpackCmdHooks

# dumpVars: env-vars in the build directory, from `export -p`, so that a
# kept build can be entered with the state its failing phase began
# with. It is made empty with its mode by install first: 0600, as
# nixpkgs has written it since nixpkgs#335016. nbsTestEnvVarsMode is the
# tests' own (not nixpkgs'): 0644 lets an unprivileged nbs read it.
# Writing it never fails the build.
dumpVars() {
    [[ ${noDumpEnvVars:-0} == 1 ]] && return 0
    local file=$NIX_BUILD_TOP/env-vars
    if install -m "${nbsTestEnvVarsMode:-0600}" /dev/null "$file"; then
        export -p 2>/dev/null >|"$file" || :
    fi
}

# The EXIT trap. Status 0 runs exitHook; any other failureHook, and with
# succeedOnFailure the build counts as done, $out/nix-support/failed
# holding the status.
exitHandler() {
    exitCode=$?
    set +e
    if ((exitCode == 0)); then
        runHook exitHook
        return 0
    fi
    runHook failureHook
    if [[ -z ${succeedOnFailure:-} ]]; then return "$exitCode"; fi
    echo "setup: status $exitCode, but succeedOnFailure is set: the build counts as done"
    local note=$out/nix-support/failed
    mkdir -p "${note%/*}"
    printf %s "$exitCode" >"$note"
    exit 0
}

######################################################################
# Phases. Each runs its pre and post hooks around its work. The
# stand-in's defaults do little: busybox has no make.

# The unpackCmd hook everyone has: a tarball is extracted, a directory
# copied under its name without the store hash.
__unpackDirOrTar() {
    local from=$1 to
    if [[ ! -d $from ]]; then
        case $from in
        *.tar | *.tar.* | *.tgz) tar xf "$from" ;;
        *) return 1 ;;
        esac
        return
    fi
    to=$(stripHash "$from")
    if [[ -e $to ]]; then
        echo "setup: $to is there already, so $from is not copied to it" >&2
        return 1
    fi
    cp -r -- "$from" "$to"
}
unpackCmdHooks+=(__unpackDirOrTar)

unpackPhase() {
    runHook preUnpack
    if [[ -z ${srcs:-} ]]; then
        if [[ -z ${src:-} ]]; then
            echo "setup: no src and no srcs: nothing to unpack" >&2
            exit 1
        fi
        srcs=$src
    fi
    local -a sources=()
    concatTo sources srcs
    local -A had=()
    local s d
    for d in */; do had[$d]=1; done
    for s in "${sources[@]}"; do
        echo "setup: unpacking $s"
        runOneHook unpackCmd "$s" || { echo "setup: no unpackCmd takes $s" >&2; exit 1; }
    done
    if [[ -z ${sourceRoot:-} ]]; then
        # The source root is the one directory unpacking added.
        local -a added=()
        for d in */; do
            [[ -n ${had[$d]:-} ]] || added+=("${d%/}")
        done
        if ((${#added[@]} != 1)); then
            echo "setup: unpacking added ${#added[@]} directories (${added[*]}); set sourceRoot" >&2
            exit 1
        fi
        sourceRoot=${added[0]}
    fi
    echo "setup: sources in $sourceRoot"
    # Copies from the store are read-only; builds write into them.
    chmod -R u+w -- "$sourceRoot"
    runHook postUnpack
}

patchPhase() {
    runHook prePatch
    local -a list=()
    concatTo list patches
    local p
    for p in ${list[@]+"${list[@]}"}; do
        echo "setup: patch $p"
        patch -p1 <"$p"
    done
    runHook postPatch
}

configurePhase() {
    runHook preConfigure
    local script=${configureScript:-}
    if [[ -z $script && -x ./configure ]]; then script=./configure; fi
    if [[ -z $script ]]; then
        echo "setup: nothing to configure"
    else
        local -a args=("--prefix=$prefix")
        concatTo args configureFlags configureFlagsArray
        $script "${args[@]}"
    fi
    runHook postConfigure
}

buildPhase() {
    runHook preBuild
    echo "setup: the stand-in has no default build; set buildPhase"
    runHook postBuild
}

checkPhase() {
    runHook preCheck
    echo "setup: the stand-in has no default check; set checkPhase"
    runHook postCheck
}

installPhase() {
    runHook preInstall
    [[ -z $prefix ]] || mkdir -p "$prefix"
    runHook postInstall
}

fixupPhase() {
    local o
    for o in $(getAllOutputNames); do
        [[ ! -e ${!o} ]] || chmod -R u+w -- "${!o}"
    done
    runHook preFixup
    runHook postFixup
}

installCheckPhase() {
    runHook preInstallCheck
    runHook postInstallCheck
}

distPhase() {
    runHook preDist
    runHook postDist
}

######################################################################
# Running the phases.

# __phaseOff PHASE: whether PHASE is switched off. Of the standard
# phases, checkPhase, installCheckPhase and distPhase run only with
# their doX (doCheck…), the others unless their dontX (dontUnpack…) is
# set. Other phases always run.
__phaseOff() {
    local stem=${1%Phase} switch
    stem=${stem^}
    case $1 in
    checkPhase | installCheckPhase | distPhase) switch=do$stem; [[ -z ${!switch:-} ]] ;;
    unpackPhase | patchPhase | configurePhase | buildPhase | installPhase | fixupPhase) switch=dont$stem; [[ -n ${!switch:-} ]] ;;
    *) return 1 ;;
    esac
}

# __defaultPhases: the phases genericBuild runs when phases is empty:
# the standard ones, with the derivation's extra lists at their places
# (each list an array or a space-separated string).
__defaultPhases() {
    local word ref all=
    for word in prePhases unpackPhase patchPhase preConfigurePhases configurePhase \
        preBuildPhases buildPhase checkPhase preInstallPhases installPhase \
        preFixupPhases fixupPhase installCheckPhase preDistPhases distPhase postPhases; do
        if [[ $word == *Phases ]]; then
            ref="$word[*]"
            all+=" ${!ref:-}"
        else
            all+=" $word"
        fi
    done
    echo $all
}

# The header nbs finds in build logs, and Nix's own note of the phase
# (shown by nix build).
showPhaseHeader() {
    printf 'Running phase: %s\n' "$1"
    [[ -z ${NIX_LOG_FD-} ]] || printf '@nix {"action":"setPhase","phase":"%s"}\n' "$1" >&"$NIX_LOG_FD"
}

# runPhase PHASE: a variable named PHASE is its code, else the function.
runPhase() {
    local curPhase="$*"
    if __phaseOff "$curPhase"; then return 0; fi
    showPhaseHeader "$curPhase"
    dumpVars
    if [[ -n ${!curPhase:-} ]]; then
        eval "${!curPhase}"
    else
        eval "$curPhase"
    fi
    # The later phases run in the source root.
    if [[ $curPhase == unpackPhase ]]; then
        if [[ -n ${sourceRoot:-} ]]; then chmod +x -- "$sourceRoot"; fi
        cd -- "${sourceRoot:-.}"
    fi
}

# genericBuild: the derivation's buildCommandPath or buildCommand when
# it has one, else its phases.
genericBuild() {
    export GZIP_NO_TIMESTAMPS=1
    if [[ -f ${buildCommandPath:-} ]]; then
        . "$buildCommandPath"
    elif [[ -n ${buildCommand:-} ]]; then
        eval "$buildCommand"
    else
        [[ -n ${phases[*]:-} ]] || phases=$(__defaultPhases)
        for curPhase in ${phases[*]}; do runPhase "$curPhase"; done
    fi
}

######################################################################
# Setting up.

if [[ -f .attrs.sh || -n ${NIX_ATTRS_JSON_FILE:-} ]]; then
    __structuredAttrs=1
    echo "setup: the derivation has structured attrs"
    for __name in "${!outputs[@]}"; do export "$__name=${outputs[$__name]}"; done
    # Nix before 2.13.4 (and 2.14) sets these to host paths: where they
    # name no file, they are made to name the build directory's.
    for __name in NIX_ATTRS_JSON_FILE=.attrs.json NIX_ATTRS_SH_FILE=.attrs.sh; do
        __file=$NIX_BUILD_TOP/${__name#*=}
        __name=${__name%%=*}
        [[ -e ${!__name:-} ]] || export "$__name=$__file"
    done
    # env.NAME = VALUE: the builder's environment.
    for __name in "${!env[@]}"; do export "$__name=${env[$__name]}"; done
    unset __name __file
else
    __structuredAttrs=
    outputs=${outputs:-out}
fi

trap exitHandler EXIT

# 1980-01-01: zip files cannot say 1970.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-315532800}
shopt -s nullglob

PATH=
for __dir in $initialPath; do addToSearchPath PATH "${__dir%/}/bin"; done
unset __dir

[[ -n ${SHELL:-} ]] || { echo "setup: SHELL is not set (stdenv's builder sets it first)" >&2; exit 1; }
BASH=$SHELL
export CONFIG_SHELL=$SHELL

runHook preHook

# The inputs: each must exist; their bin/ go before initialPath in
# PATH, their setup hooks are sourced (hostOffset and targetOffset say
# which kind of input: native -1 0, plain 0 1), then every env hook runs
# for every input.
__inputs=() __inputBins=
for __kind in nativeBuildInputs:-1:0 buildInputs:0:1; do
    IFS=: read -r __list hostOffset targetOffset <<<"$__kind"
    __list="$__list[@]"
    for __input in ${!__list+${!__list}}; do
        [[ -e $__input ]] || { echo "setup: the input $__input is not there" >&2; exit 1; }
        __inputs+=("$__input")
        addToSearchPath __inputBins "$__input/bin"
        [[ ! -f $__input/nix-support/setup-hook ]] || . "$__input/nix-support/setup-hook"
    done
done
for __input in ${__inputs[@]+"${__inputs[@]}"}; do runHook envHostTargetHook "$__input"; done
PATH=${__inputBins:+$__inputBins${PATH:+:}}$PATH
unset __inputs __inputBins __kind __list __input hostOffset targetOffset

if [[ ${NIX_NO_SELF_RPATH:-0} != 1 ]]; then
    NIX_LDFLAGS="-rpath $out/lib ${NIX_LDFLAGS-}"
    export NIX_LDFLAGS
fi
export TZ=UTC
prefix=${prefix:-$out}
NIX_BUILD_CORES=${NIX_BUILD_CORES:-1}
((NIX_BUILD_CORES > 0)) || NIX_BUILD_CORES=1
export NIX_BUILD_CORES
export NIX_SSL_CERT_FILE=${NIX_SSL_CERT_FILE:-/no-cert-file.crt}

runHook postHook
runHook userHook
dumpVars

case $__standinOptions in *e*) ;; *) set +e ;; esac
case $__standinOptions in *u*) ;; *) set +u ;; esac
unset __standinOptions
