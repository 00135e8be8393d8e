// The test's own little runner: named steps, each passing or failing with
// the reason, and the closing line CI reads ("N passed, N failed").

package imbox.kotlintest

class Checks {
    private var passed = 0
    private val failures = mutableListOf<String>()

    /** Runs one step; a thrown exception or a failed `check` fails it and the run goes on. */
    suspend fun step(name: String, body: suspend () -> Unit) {
        try {
            body()
            passed += 1
            println("ok   $name")
        } catch (e: Throwable) {
            failures += name
            println("FAIL $name: $e")
            e.printStackTrace(System.out)
        }
    }

    val failed: Boolean get() = failures.isNotEmpty()

    /** Prints the summary and returns the process's exit code. */
    fun finish(): Int {
        if (failures.isNotEmpty()) println("failed: ${failures.joinToString("; ")}")
        println("kotlin: $passed passed, ${failures.size} failed")
        return if (failures.isEmpty()) 0 else 1
    }
}
