using System.CommandLine;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.TrainJob.Cli;
using static TorchSharp.torch;

namespace ServerlessClassifier.TrainJob.Commands;

/// <summary><c>info</c>: how libtorch was loaded and whether CUDA is available.</summary>
public static class InfoCommand
{
    public static Command Create(GlobalOptions global, CliHost host)
    {
        var command = new Command("info", "Show how libtorch was loaded on this machine and whether CUDA is available.");
        CliApp.Handle(command, global, host, (_, context, _) =>
        {
            var runtime = TorchRuntime.EnsureInitialized();
            context.WriteLine($"TorchSharp natives:    {runtime?.NativeDirectory ?? "(platform default)"}");
            context.WriteLine($"LibTorchSharp:         {runtime?.LibTorchSharpPath ?? "(platform default)"}");
            context.WriteLine($"Patched for libstdc++: {runtime?.Patched ?? false}");
            context.WriteLine($"CUDA available:        {cuda.is_available()}");
            return Task.FromResult(ExitCodes.Ok);
        });
        return command;
    }
}
