// STAND-IN, not Android's code: the two androidx.lifecycle types that
// ffi/samples/Pairing.kt uses, with Android's names and signatures, so the
// sample compiles and runs on a plain JVM (there is no Android SDK here).
// On a phone the real androidx.lifecycle library provides them.

package androidx.lifecycle

interface LifecycleOwner

interface DefaultLifecycleObserver {
    fun onStart(owner: LifecycleOwner) {}

    fun onStop(owner: LifecycleOwner) {}
}
