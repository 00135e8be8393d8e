// STAND-IN, not Android's code: the android.net types that
// ffi/samples/Pairing.kt uses, with Android's names and signatures, so the
// sample compiles and runs on a plain JVM (there is no Android SDK here).
// On a phone the Android framework provides them.

package android.net

class Network

class ConnectivityManager {
    open class NetworkCallback {
        open fun onAvailable(network: Network) {}

        open fun onLost(network: Network) {}
    }
}
