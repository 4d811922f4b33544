#!/bin/sh
# A stand-in for cargo (CARGO=this script) to test test-suites without
# compiling anything. FAKE_CARGO picks what the loom models do with a bug
# put back (`caught`: the named model fails; anything else: it passes).
case "$*" in
kbuild*)
    echo "   Compiling kernel (fake)"
    exit 0 ;;
*--features*)
    # A must-fail entry: the model named last, with a bug put back.
    for test; do :; done
    case "$FAKE_CARGO" in
    caught)
        echo "test $test ... FAILED"
        echo "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out"
        exit 101 ;;
    *)
        echo "test $test ... ok"
        echo "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out"
        exit 0 ;;
    esac ;;
*--test\ loom*)
    [ "$RUSTFLAGS" = "--cfg loom" ] || { echo "fake-cargo: RUSTFLAGS='$RUSTFLAGS'" >&2; exit 1; }
    echo "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out"
    exit 0 ;;
test*)
    echo "test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out"
    echo "test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out"
    exit 0 ;;
esac
echo "fake-cargo: unexpected arguments: $*" >&2
exit 1
