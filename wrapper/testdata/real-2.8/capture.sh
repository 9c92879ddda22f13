#!/bin/bash
# Captures the stderr of a real Nix (2.8 here) for wrapper/testdata/real-2.8.
# Run as root with sandbox = true and no substituters, from this directory:
#   ./capture.sh
# Remote builds use a fake ssh that runs the remote command (nix-store
# --serve, nix-daemon --stdio) on this machine against a second store
# (--store $scratch/rstore), so the builder's log and messages are Nix's own.
set -u
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/bin"
cat > "$scratch/bin/ssh" <<SSH
#!/bin/bash
host=""; cmd=(); master=0
while [ \$# -gt 0 ]; do
  case "\$1" in
    -M) master=1; shift;;
    -i|-p|-o|-l|-F|-S|-O) shift 2;;
    -*) shift;;
    *) if [ -z "\$host" ]; then host=\$1; else cmd+=("\$1"); fi; shift;;
  esac
done
if [ \$master = 1 ]; then echo started; exec sleep 1000; fi
exec sh -c "\${cmd[*]} --store $scratch/rstore"
SSH
chmod +x "$scratch/bin/ssh"
fakessh="$scratch/bin"

cd "$here"
export TERM=xterm-256color
X=(--extra-experimental-features 'nix-command flakes')
XS="--extra-experimental-features 'nix-command flakes'"
clean() { rm -rf /tmp/nix-build-wr-*; }
cap() { # NAME CMD...: stderr to NAME.log
  local name=$1; shift; clean
  timeout 120 "$@" > /dev/null 2> "$name.log"; echo "$name exit=$?"
}
captty() { # NAME SHELL-COMMAND: stderr on a terminal (script(1)); stdout not captured
  local name=$1; shift; clean
  script -q -e -c "stty cols 100 rows 30; $* >/dev/null" "$scratch/ts" >/dev/null; echo "$name exit=$?"
  sed '1d;$d' "$scratch/ts" | head -c -1 > "$name.log"   # drop script(1)'s header and footer
}
cap nix-build-local nix-build fail.nix -A bad --keep-failed
cap nix-build-no-keep nix-build fail.nix -A bad
cap nix-build-keep-going nix-build fail.nix -A bad -A bad2 --keep-failed --keep-going
cap nix-build-dependency nix-build fail.nix -A top --keep-failed
cap nix-build-fod-mismatch nix-build fail.nix -A fod --keep-failed
cap nix-build-no-output nix-build fail.nix -A noout --keep-failed
cap nix-build-success nix-build fail.nix -A good --keep-failed --no-out-link
cap nix-build-eval-error nix-build fail.nix -A nosuchattr --keep-failed
cap nix-L nix "${X[@]}" build -L --keep-failed --no-link -f fail.nix bad
cap nix-no-L nix "${X[@]}" build --keep-failed --no-link -f fail.nix bad2
cap nix-L-keep-going nix "${X[@]}" build -L --keep-failed --keep-going --no-link -f fail.nix bad bad2 top
PATH=$fakessh:$PATH cap remote-ssh nix-build fail.nix -A bad --keep-failed --max-jobs 0 --builders 'ssh://nbs-remote x86_64-linux'
PATH=$fakessh:$PATH cap remote-ssh-keep-going nix-build fail.nix -A bad -A bad2 -A top --keep-failed --keep-going --max-jobs 0 --builders 'ssh://nbs-remote x86_64-linux - 2'
PATH=$fakessh:$PATH cap remote-ssh-ng nix-build fail.nix -A bad2 --keep-failed --max-jobs 0 --builders 'ssh-ng://nbs-remote?remote-program=nix-daemon%20--option%20keep-failed%20true x86_64-linux'
PATH=$fakessh:$PATH cap remote-ssh-ng-not-kept nix-build fail.nix -A bad2 --keep-failed --max-jobs 0 --builders 'ssh-ng://nbs-remote x86_64-linux'
PATH=$fakessh:$PATH cap remote-ssh-nix-L nix "${X[@]}" build -L --keep-failed --no-link -f fail.nix bad --max-jobs 0 --builders 'ssh://nbs-remote x86_64-linux'
captty tty-nix-build-keep-going nix-build fail.nix -A bad -A bad2 --keep-failed --keep-going
captty tty-nix nix "$XS" build --keep-failed --no-link -f fail.nix bad
captty tty-nix-L-keep-going nix "$XS" build -L --keep-failed --keep-going --no-link -f fail.nix bad bad2
PATH=$fakessh:$PATH captty tty-remote-ssh-nix-L nix "$XS" build -L --keep-failed --no-link -f fail.nix bad --max-jobs 0 --builders "'ssh://nbs-remote x86_64-linux'"
# SIGINT to nix-build (by its pid) while the builder waits.
clean
nix-build fail.nix -A slow --keep-failed > /dev/null 2> nix-build-interrupted.log & pid=$!
sleep 3; kill -INT $pid; wait $pid; echo "nix-build-interrupted exit=$?"
clean
