// A stub of the few UnityEngine types the package's sample uses, so that Mono's
// mcs compiles TictactoeBotBehaviour.cs here (tests/test_native_csharp.py).
// Unity itself is not run; this is not its API beyond these names. Unity's
// AOT.MonoPInvokeCallbackAttribute too, which Vinom.cs uses under Unity.
namespace UnityEngine
{
    public class Object { }
    public class Component : Object { }
    public class Behaviour : Component { }
    public class MonoBehaviour : Behaviour { }

    public static class Debug
    {
        public static void LogWarning(object message) { System.Console.Error.WriteLine(message); }
    }
}

namespace AOT
{
    [System.AttributeUsage(System.AttributeTargets.Method)]
    public sealed class MonoPInvokeCallbackAttribute : System.Attribute
    {
        public MonoPInvokeCallbackAttribute(System.Type type) { }
    }
}
