using ServerlessClassifier.ModelCore.Runtime;
using static TorchSharp.torch;

// The training CLI grows with the TrainJob issue; for now it reports how libtorch was loaded.
if (args is ["info"])
{
    var runtime = TorchRuntime.EnsureInitialized();
    Console.WriteLine($"TorchSharp natives: {runtime?.NativeDirectory ?? "(platform default)"}");
    Console.WriteLine($"LibTorchSharp:      {runtime?.LibTorchSharpPath ?? "(platform default)"}");
    Console.WriteLine($"Patched for libstdc++: {runtime?.Patched ?? false}");
    Console.WriteLine($"CUDA available:     {cuda.is_available()}");
    return 0;
}
Console.Error.WriteLine("usage: ServerlessClassifier.TrainJob info");
return 2;
