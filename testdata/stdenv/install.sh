# install -m MODE SRC DEST, the only form stdenv's dumpVars uses: busybox
# has no install applet.
if [ "$#" != 4 ] || [ "$1" != -m ]; then echo "install: only install -m MODE SRC DEST" >&2; exit 1; fi
rm -f -- "$4" && cat -- "$3" > "$4" && chmod "$2" -- "$4"
