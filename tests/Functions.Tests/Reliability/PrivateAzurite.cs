using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests.Reliability;

/// <summary>
/// An Azurite process of a test's own (blob, queue, table on free ports, data in a temporary folder that
/// outlives the process), so that the test can kill it (SIGKILL) and start it again on the same ports and data.
/// </summary>
public sealed class PrivateAzurite : IAsyncDisposable
{
    private const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private readonly int[] ports;
    private Process? process;

    private PrivateAzurite(string location, int[] ports)
    {
        Location = location;
        this.ports = ports;
    }

    /// <summary>The data folder, kept across <see cref="Kill"/> and <see cref="StartAgainAsync"/>.</summary>
    public string Location { get; }

    public string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AccountKey};" +
        $"BlobEndpoint=http://127.0.0.1:{ports[0]}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{ports[1]}/devstoreaccount1;" +
        $"TableEndpoint=http://127.0.0.1:{ports[2]}/devstoreaccount1;";

    public static async Task<PrivateAzurite> StartAsync()
    {
        var location = Path.Combine(Path.GetTempPath(), $"azurite-fault-{Guid.NewGuid():N}");
        Directory.CreateDirectory(location);
        var azurite = new PrivateAzurite(location, FreePorts(3));
        await azurite.StartAgainAsync();
        return azurite;
    }

    /// <summary>SIGKILL: no shutdown, no flush; whatever Azurite had not written to disk is gone.</summary>
    public void Kill()
    {
        var running = process ?? throw new InvalidOperationException("Azurite is not running.");
        running.Kill(entireProcessTree: true);
        running.WaitForExit();
        running.Dispose();
        process = null;
    }

    /// <summary>Starts Azurite on the same ports and data folder and waits until the blob and queue ports accept connections.</summary>
    public async Task StartAgainAsync()
    {
        var executable = Path.Combine(TestAssets.RepositoryRoot, "node_modules", ".bin", "azurite");
        if (!File.Exists(executable))
        {
            throw new FileNotFoundException($"{executable} is missing: run scripts/test.sh (it runs npm ci).");
        }
        var start = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[]
        {
            "--silent", "--skipApiVersionCheck", "--loose", "--location", Location,
            "--blobHost", "127.0.0.1", "--blobPort", $"{ports[0]}",
            "--queueHost", "127.0.0.1", "--queuePort", $"{ports[1]}",
            "--tableHost", "127.0.0.1", "--tablePort", $"{ports[2]}",
        })
        {
            start.ArgumentList.Add(argument);
        }
        process = Process.Start(start) ?? throw new InvalidOperationException("Azurite did not start.");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!(await AcceptsAsync(ports[0]) && await AcceptsAsync(ports[1])))
        {
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"Azurite did not come up on {ports[0]}/{ports[1]} (exited: {process.HasExited}).");
            }
            await Task.Delay(100);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (process is not null)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            process.Dispose();
            process = null;
        }
        Directory.Delete(Location, recursive: true);
    }

    /// <summary>Whether the blob port takes connections now.</summary>
    public Task<bool> AcceptsBlobAsync() => AcceptsAsync(ports[0]);

    private static async Task<bool> AcceptsAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        listeners.ForEach(l => l.Start());
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        listeners.ForEach(l => l.Stop());
        return ports;
    }
}
