using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.TrainJob.Cli;

// First, before the threads that allocate batch buffers start: cap glibc's malloc arenas (see MallocArenas).
MallocArenas.Apply();

// Ctrl-C (and SIGTERM from a container runtime) cancel the running command instead of killing the
// process, so training can leave its checkpoint and say how to resume; a second Ctrl-C kills.
using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    if (!cancellation.IsCancellationRequested)
    {
        e.Cancel = true;
        cancellation.Cancel();
    }
};
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    cancellation.Cancel();
});
return await CliApp.RunAsync(args, Console.Out, Console.Error, cancellationToken: cancellation.Token);
