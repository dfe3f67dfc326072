using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using ServerlessClassifier.TrainJob.Commands;
using ServerlessClassifier.TrainJob.Commands.Train;

namespace ServerlessClassifier.TrainJob.Cli;

/// <summary>
/// The command line: <c>train</c>, <c>evaluate</c>, <c>classify</c>, <c>publish</c>, <c>models list|promote</c>,
/// <c>review export|import|approve|reject</c>, <c>monitor</c> and <c>info</c>. Exit codes: <see cref="ExitCodes"/>.
/// </summary>
public static class CliApp
{
    /// <summary>Parses and runs a command line, writing to the given writers; returns the exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CliHost? host = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var root = Build(host ?? new CliHost());
        var parse = root.Parse(args);
        if (parse.Action is ParseErrorAction)
        {
            foreach (var parseError in parse.Errors)
            {
                // Name the option in every message (some of the library's messages only quote the value).
                var option = parseError.SymbolResult switch
                {
                    OptionResult o => o.Option,
                    ArgumentResult { Parent: OptionResult o } => o.Option,
                    _ => null,
                };
                var message = option is not null && !parseError.Message.Contains(option.Name, StringComparison.Ordinal)
                    ? $"{option.Name}: {parseError.Message}"
                    : parseError.Message;
                await error.WriteLineAsync($"error: {message}");
            }
            var names = new List<string>();
            for (SymbolResult? result = parse.CommandResult; result is CommandResult commandResult; result = commandResult.Parent)
            {
                names.Add(commandResult.Command.Name);
            }
            names.Reverse();
            await error.WriteLineAsync($"Run '{string.Join(' ', names)} --help' for the options.");
            return ExitCodes.Usage;
        }
        var invocation = new InvocationConfiguration
        {
            Output = output,
            Error = error,
            // Failures are caught and reported in one line by Handle; Ctrl-C is turned into the
            // cancellation token by Program (so training can save its checkpoint and say how to resume).
            EnableDefaultExceptionHandler = false,
            ProcessTerminationTimeout = null,
        };
        return await parse.InvokeAsync(invocation, cancellationToken);
    }

    public static RootCommand Build(CliHost host)
    {
        ArgumentNullException.ThrowIfNull(host);
        var global = new GlobalOptions();
        var root = new RootCommand(
            "ServerlessClassifier training job: train an image classifier by transfer learning, evaluate it, classify images " +
            "and publish models to the blob model store that the Functions app serves from.")
        {
            TrainCommand.Create(global, host),
            EvaluateCommand.Create(global, host),
            ClassifyCommand.Create(global, host),
            JobCommands.Create(global, host),
            ModelCommands.CreatePublish(global, host),
            ModelCommands.CreateModels(global, host),
            Commands.Review.ReviewCommands.Create(global, host),
            Commands.Monitor.MonitorCommand.Create(global, host),
            InfoCommand.Create(global, host),
        };
        root.Options.Add(global.Storage);
        root.Options.Add(global.Verbose);
        return root;
    }

    /// <summary>Sets a command's action: builds the context, runs the handler, maps exceptions to exit codes and one masked line.</summary>
    public static void Handle(Command command, GlobalOptions global, CliHost host, Func<ParseResult, CliContext, CancellationToken, Task<int>> handler)
    {
        ArgumentNullException.ThrowIfNull(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            CliContext context;
            try
            {
                context = CliContext.Create(parse, global, host);
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException)
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync(SecretMasker.Apply($"error: {e.Message}", []));
                return ExitCodes.Failure;
            }
            try
            {
                return await handler(parse, context, cancellationToken);
            }
            catch (UsageException e)
            {
                context.Error($"error: {e.Message}");
                context.Error($"Run '{command.Name} --help' for the options.");
                return ExitCodes.Usage;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                context.Error("Cancelled.");
                return ExitCodes.Cancelled;
            }
#pragma warning disable CA1031 // The CLI's last line of defence: any failure becomes one clear line and exit code 1.
            catch (Exception e)
#pragma warning restore CA1031
            {
                context.Error(context.Describe(e));
                return ExitCodes.Failure;
            }
        });
    }
}
